"""How write ops become the values a database takes: times as fixed-width UTC text, run ids
canonical (Postgres), whatever form the engine's values come in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stepwise.backends import base, encoding
from stepwise.backends.postgres import backend as postgres

STORED = "2026-01-31T08:00:01.000000Z"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 1, 31, 8, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 31, 10, 0, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 1, 31, 8, 0, 1, tzinfo=UTC).astimezone().replace(tzinfo=None),
    ],
    ids=["utc", "another-zone", "naive-local"],
)
def test_a_time_is_stored_as_utc_text_of_fixed_width(moment: datetime) -> None:
    assert encoding.time_text(moment) == STORED
    assert encoding.time_text(moment + timedelta(microseconds=7)) == STORED[:-3] + "07Z"


def test_text_order_is_time_order() -> None:
    start = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    moments = [start + timedelta(microseconds=n * 333_333) for n in range(40)]
    assert sorted(map(encoding.time_text, moments)) == list(map(encoding.time_text, moments))


def _finished(run_id: str) -> base.StepFinished:
    at = datetime(2026, 1, 31, 8, 0, 1, tzinfo=UTC)
    return base.StepFinished("token", run_id, "k", base.StepStatus.COMPLETED, "1", None, 1, at, at)


def test_a_written_run_id_is_canonical_or_null() -> None:
    ident = uuid.uuid4()
    for spelling in (str(ident), str(ident).upper(), ident.hex, f"{{{ident}}}"):
        assert postgres._op_document(0, _finished(spelling))["run_id"] == str(ident)
    for garbage in ("", "not-a-run", str(ident)[:-1]):
        assert postgres._op_document(0, _finished(garbage))["run_id"] is None


def test_an_op_document_has_every_field_as_plain_values() -> None:
    ident = str(uuid.uuid4())
    assert postgres._op_document(3, _finished(ident)) == {
        "kind": "step_finished",
        "token": "token",
        "run_id": ident,
        "key": "k",
        "status": "completed",
        "output": "1",
        "error": None,
        "attempts": 1,
        "started_at": STORED,
        "finished_at": STORED,
        "n": 3,
    }
