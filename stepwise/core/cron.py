"""Cron expressions read in a time zone, and the catch-up policy for ticks nobody fired.

The parser is croniter's (a maintained library; we never write one). An expression has five
fields (minute, hour, day of month, month, day of week), or six with seconds first
(``*/10 * * * * *``), or is a macro such as ``@hourly``. Ticks are computed in the schedule's
time zone, so ``0 9 * * *`` in ``Europe/Paris`` is 9:00 there, summer and winter, and are
stored in UTC.

Catch-up policy: a tick fires when a worker sees it due, however late, as long as it is at
most ``starting_deadline`` seconds late (a worker is always running: ticks fire one by one, in
order, each exactly once). Ticks later than that are skipped, and the schedule goes on from
the oldest tick still within the deadline. So after an outage at most
``starting_deadline`` seconds' worth of ticks fire, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from stepwise.errors import InvalidArgument

DEFAULT_STARTING_DEADLINE = 300.0
"""Seconds a tick may fire late before it is skipped (see the module docstring)."""

_FIELDS = (5, 6)


@dataclass(frozen=True, slots=True)
class Cron:
    """A valid cron ``expression`` read in the IANA time zone ``timezone``: build with
    ``parse``."""

    expression: str
    timezone: str = "UTC"

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``, in UTC."""
        tick: datetime = self._ticks(moment).get_next(datetime)
        return tick.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment``, in UTC."""
        tick: datetime = self._ticks(moment + timedelta(microseconds=1)).get_prev(datetime)
        return tick.astimezone(UTC)

    def _ticks(self, start: datetime) -> croniter:
        seconds_first = len(self.expression.split()) == 6
        local = start.astimezone(ZoneInfo(self.timezone))
        return croniter(self.expression, local, second_at_beginning=seconds_first)


def parse(expression: object, timezone: object = "UTC") -> Cron:
    """``Cron`` of ``expression`` in ``timezone``; ``InvalidArgument`` naming what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidArgument("cron expression", f"must be a non-empty string, got {expression!r}")
    text = " ".join(expression.split())
    fields = len(text.split())
    seconds_first = fields == 6
    if not text.startswith("@") and fields not in _FIELDS:
        raise InvalidArgument(
            "cron expression",
            f"{expression!r} has {fields} fields: use 5 (minute hour day month weekday) "
            "or 6 (second first)",
        )
    if not croniter.is_valid(text, second_at_beginning=seconds_first):
        raise InvalidArgument("cron expression", f"{expression!r} is not a valid expression")
    if not isinstance(timezone, str) or not timezone:
        raise InvalidArgument("time zone", f"must be an IANA name such as 'UTC', got {timezone!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            "time zone", f"{timezone!r} is not a known IANA time zone (e.g. 'Europe/Paris')"
        ) from None
    return Cron(text, timezone)


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with a due schedule: fire ``fire`` (None: fire nothing), then wait for
    ``next_fire_at``."""

    fire: datetime | None
    next_fire_at: datetime


def catch_up(cron: Cron, due: datetime, now: datetime, starting_deadline: float) -> Step:
    """The catch-up policy (module docstring) for a schedule whose next tick ``due`` has come."""
    oldest = now - timedelta(seconds=starting_deadline)
    if due >= oldest:
        return Step(due, cron.next_after(due))
    first = cron.next_after(oldest - timedelta(microseconds=1))
    if first <= now:
        return Step(first, cron.next_after(first))
    return Step(None, first)


def tick_text(tick: datetime) -> str:
    """A tick as stable text (UTC, whole seconds): the tick's part of its run's idempotency
    key."""
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
