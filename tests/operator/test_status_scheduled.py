"""``status.build`` of a run that waits for its start time (``spec.startAt``/``spec.delay``):
pending, ``startAt`` and a message that says when; once due, neither."""

from __future__ import annotations

from datetime import timedelta

from stepwise.backends.base import RunStatus
from stepwise.operator import status
from tests.operator.test_status import NOW, T0, make_run


def test_a_run_waiting_for_its_start_time_says_when_it_starts() -> None:
    later = (NOW + timedelta(hours=1, microseconds=500)).replace(microsecond=500)
    run = make_run(RunStatus.PENDING, claims=0, started_at=None, available_at=later)
    built = status.build(run, [], previous=None, generation=1, waiting_reason=None, now=NOW)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert built["phase"] == "Pending"
    assert built["startAt"] == stamp
    assert built["message"] == f"scheduled to start at {stamp}"
    available = next(c for c in built["conditions"] if c["type"] == "WorkerAvailable")
    assert available["status"] == "True"


def test_a_due_run_has_no_start_time_in_its_status() -> None:
    run = make_run(RunStatus.PENDING, claims=0, started_at=None, available_at=T0)
    built = status.build(run, [], previous=None, generation=1, waiting_reason=None, now=NOW)
    assert "startAt" not in built
    assert built["message"] == "waiting for a worker to take the run"
