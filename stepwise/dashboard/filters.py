"""The runs page's filters, read from the query string: workflow, status, a time window
(``since``: a duration ago such as ``15m`` or ``7d``) and the page cursor. A value the client
would refuse is an ``InvalidArgument`` the page shows, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from stepwise.backends.base import RunStatus
from stepwise.core import limits
from stepwise.errors import InvalidArgument

SINCE_CHOICES = ("15m", "1h", "24h", "7d", "30d")
"""What the time filter offers; any duration ``limits.parse_duration`` reads is accepted."""


@dataclass(frozen=True, slots=True)
class Filters:
    workflow: str = ""
    status: str = ""
    since: str = ""
    cursor: str = ""

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes``, empty values left out."""
        values = {
            "workflow": self.workflow,
            "status": self.status,
            "since": self.since,
            "cursor": self.cursor,
        }
        values.update(changes)
        return urlencode({name: value for name, value in values.items() if value})

    def list_arguments(self, now: datetime) -> dict[str, Any]:
        """Keyword arguments of ``Client.list``."""
        return {
            "workflow": self.workflow or None,
            "status": RunStatus(self.status) if self.status else None,
            "since": now - self._window() if self.since else None,
            "cursor": self.cursor or None,
        }

    def _window(self) -> timedelta:
        try:
            window = limits.parse_duration(self.since)
        except (ValueError, OverflowError) as exc:
            raise InvalidArgument("since", str(exc)) from None
        limits.seconds(window, "since")
        return window


def read(query: Any) -> Filters:
    """The filters in ``query`` (a request's query mapping), their text checked."""
    found = Filters(*(str(query.get(name, "")).strip() for name in _NAMES))
    if found.status and found.status not in set(RunStatus):
        statuses = ", ".join(RunStatus)
        raise InvalidArgument("status", f"must be one of {statuses}, not {found.status!r}")
    return found


_NAMES = ("workflow", "status", "since", "cursor")
