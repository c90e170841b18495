"""Pages of runs and steps, and the opaque cursors that continue them.

A cursor is the position of the last item of a page (a run's ``created_at`` and ``id``, a
step's ``seq``), so the next page starts right after it whatever was added meanwhile: a keyset,
never an offset. It is opaque to users (base64 of a small JSON document tagged with what it
pages), so its form can change without breaking a caller that only passes it back.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Generic, TypeVar

from stepwise.backends.base import RunPosition, RunRecord, StepRecord
from stepwise.errors import InvalidArgument

_T = TypeVar("_T")


class Page(list[_T], Generic[_T]):
    """One page of a listing, a list; ``next_cursor`` continues it (None: this is the last)."""

    def __init__(self, items: list[_T], next_cursor: str | None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


def _encode(kind: str, value: list[Any]) -> str:
    text = json.dumps([kind, *value], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(kind: str, cursor: object) -> list[Any]:
    """The values of ``cursor`` if it is a cursor of ``kind``; ``InvalidArgument`` otherwise."""
    if isinstance(cursor, str):
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            document = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (ValueError, binascii.Error, UnicodeError):
            document = None
        if isinstance(document, list) and document and document[0] == kind:
            return document[1:]
    raise _invalid(kind, cursor)


def _invalid(kind: str, cursor: object) -> InvalidArgument:
    return InvalidArgument("cursor", f"is not a cursor of a page of {kind}: {cursor!r:.80}")


def run_cursor(run: RunRecord[Any]) -> str:
    return _encode("runs", [run.created_at.isoformat(), run.id])


def run_position(cursor: str) -> RunPosition:
    values = _decode("runs", cursor)
    try:
        created_at, run_id = values
        return RunPosition(datetime.fromisoformat(created_at), str(run_id))
    except (ValueError, TypeError):
        raise _invalid("runs", cursor) from None


def step_cursor(step: StepRecord[Any]) -> str:
    return _encode("steps", [step.seq])


def step_seq(cursor: str) -> int:
    values = _decode("steps", cursor)
    if len(values) == 1 and isinstance(values[0], int) and not isinstance(values[0], bool):
        return values[0]
    raise _invalid("steps", cursor)
