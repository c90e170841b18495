"""The storage vocabulary in values a database takes: written once, for both dialects.

* Rows → records: a record's fields are read from the row's columns of the same names (other
  columns, such as the lease, are left aside), so a new column needs no code here. The one
  thing a dialect adds is how it reads a stored time (SQLite keeps times as text; asyncpg
  already gives datetimes): ``Reader``.
* Write ops → documents: ``{"kind": <op name>, <field>: <value>, …}``, times as fixed-width UTC
  text, statuses as their values. Postgres sends a batch as one JSON array to
  ``stepwise_write``; SQLite runs, for each op, the named query of its ``kind``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stepwise.backends import base

KINDS: dict[type[base.WriteOp], str] = {
    base.StepStarted: "step_started",
    base.StepFinished: "step_finished",
    base.StepSleeping: "step_sleeping",
    base.FinishRun: "finish_run",
    base.SuspendRun: "suspend_run",
    base.ReleaseRun: "release_run",
    base.RetryRun: "retry_run",
    base.LogLine: "log_line",
}
"""Each op's name: the ``kind`` of its document and the named query that applies it."""

_Convert = Callable[[Any], Any]
_Row = Mapping[str, Any]


def time_text(moment: datetime) -> str:
    """``moment`` as stored: UTC with microseconds and a trailing Z
    (``2026-01-31T08:00:01.000000Z``), fixed width, so text order is time order. Written by
    ``isoformat``, a fifth cheaper than ``strftime``: it runs a few times per write op."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def limits_document(limits: Mapping[str, base.ConcurrencyLimit]) -> str:
    """A worker's concurrency limits as stored: ``{"<workflow>": {"concurrency", "key"}}``."""
    return json.dumps({name: dataclasses.asdict(limit) for name, limit in limits.items()})


def versions_document(versions: Mapping[str, Sequence[str]]) -> str:
    """The versions a worker serves as stored: ``{"<workflow>": ["2.0", "1.0"]}``, newest
    first."""
    return json.dumps({name: list(found) for name, found in versions.items()})


def concurrency_use(row: _Row) -> base.ConcurrencyUse:
    """A ``concurrency_use`` row (both dialects name its columns alike)."""
    limit = base.ConcurrencyLimit(row["concurrency"], row["key_field"])
    return base.ConcurrencyUse(limit, row["key"], row["running"])


def document(op: base.WriteOp) -> dict[str, Any]:
    """``op`` as plain values, under the name of its kind."""
    doc: dict[str, Any] = {"kind": KINDS[type(op)]}
    for name in _OP_FIELDS[type(op)]:
        value = getattr(op, name)
        if isinstance(value, datetime):
            value = time_text(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        doc[name] = value
    return doc


_OP_FIELDS = {kind: tuple(f.name for f in dataclasses.fields(kind)) for kind in KINDS}


class Reader:
    """Rows → records for one dialect; ``time`` turns a stored time into a datetime (None: the
    driver already returns datetimes)."""

    def __init__(self, time: _Convert | None) -> None:
        self._run = _plan(base.RunRecord, time)
        self._step = _plan(base.StepRecord, time)
        self._schedule = _plan(base.ScheduleRecord, time)
        self._signal = _plan(base.SignalRecord, time)
        self._log = _plan(base.LogEntry, time)
        self._attempt = _plan(base.AttemptRecord, time)

    def run(self, row: _Row) -> base.RunRecord:
        return base.RunRecord(**_values(self._run, row))

    def step(self, row: _Row) -> base.StepRecord:
        return base.StepRecord(**_values(self._step, row))

    def signal(self, row: _Row) -> base.SignalRecord:
        return base.SignalRecord(**_values(self._signal, row))

    def attempt(self, row: _Row) -> base.AttemptRecord:
        return base.AttemptRecord(**_values(self._attempt, row))

    def schedule(self, row: _Row) -> base.ScheduleRecord:
        return base.ScheduleRecord(**_values(self._schedule, row))

    def log(self, row: _Row) -> base.LogEntry:
        return base.LogEntry(**_values(self._log, row))

    def claimed(self, row: _Row, steps: list[base.StepRecord]) -> base.ClaimedRun:
        return base.ClaimedRun(self.run(row), str(row["lease_token"]), steps)


def _plan(record: type, time: _Convert | None) -> tuple[tuple[str, _Convert | None], ...]:
    """For each field of ``record``: its name and how a column value becomes the field's value.

    Derived from the field's type: times through ``time``, statuses into their enum, text
    through ``str`` (asyncpg returns ids as UUIDs), flags through ``bool``; payloads and
    numbers as they come."""
    hints = typing.get_type_hints(record)
    plan: list[tuple[str, _Convert | None]] = []
    for f in dataclasses.fields(record):
        kinds = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        convert: _Convert | None = None
        if datetime in kinds:
            convert = time
        elif str in kinds:
            convert = str
        elif bool in kinds:  # SQLite stores flags as 0 / 1
            convert = bool
        else:
            convert = next((k for k in kinds if isinstance(k, enum.EnumType)), None)
        plan.append((f.name, convert))
    return tuple(plan)


def _values(plan: tuple[tuple[str, _Convert | None], ...], row: _Row) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, convert in plan:
        value = row[name]
        values[name] = value if convert is None or value is None else convert(value)
    return values
