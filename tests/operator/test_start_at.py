"""A WorkflowRun that starts later (``spec.startAt`` / ``spec.delay``) with everything real: the
API server validates the fields, the run waits Pending with when it starts in its status, no
worker takes it early, and a short delay runs once it has passed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from harness.workers import Proc
from stepwise.backends.base import RunStatus
from stepwise.operator import models
from tests.operator.conftest import Database, OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

Worker = Callable[..., Proc]
FAN_OUT = {"workflow": "fan-out", "input": {"delays": [0, 0, 0]}}


def test_start_at_keeps_the_run_pending_and_scheduled_and_a_delay_runs_once_passed(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    op.start()
    worker()
    start_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    stamp = start_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    op.apply("later", {**FAN_OUT, "startAt": stamp})
    op.apply("soon", {**FAN_OUT, "delay": "1s"})

    scheduled = op.wait_status(
        "later", lambda s: s.get("message", "").startswith("scheduled"), "scheduled"
    )
    assert scheduled["phase"] == "Pending"
    assert scheduled["message"] == f"scheduled to start at {stamp}"
    assert scheduled["startAt"] == stamp
    available = next(c for c in scheduled["conditions"] if c["type"] == "WorkerAvailable")
    assert available["status"] == "True"  # a worker serves it; it only waits for its time

    done = op.wait_phase("soon", "Succeeded", timeout=60)
    assert "startAt" not in done
    soon = database.run(done["runId"])
    created = datetime.fromisoformat(op.get("soon")["metadata"]["creationTimestamp"])
    assert soon.available_at == created + timedelta(seconds=1)
    assert soon.started_at is not None
    assert soon.started_at >= soon.available_at

    # The worker took the delayed run and finished it, and left the later one alone.
    later = database.run(scheduled["runId"])
    assert (later.status, later.claims, later.available_at) == (RunStatus.PENDING, 0, start_at)


def test_the_api_server_refuses_both_start_at_and_delay_or_a_bad_delay(
    operator: OperatorHarness,
) -> None:
    op = operator
    for name, extra, expected in (
        ("both", {"startAt": "2030-01-01T00:00:00Z", "delay": "10m"}, models.START_MESSAGE),
        ("bad-delay", {"delay": "ten minutes"}, models.DURATION_MESSAGE),
        ("bad-time", {"startAt": "tomorrow"}, "startAt"),
    ):
        manifest = {
            "apiVersion": models.API_VERSION,
            "kind": models.KIND,
            "metadata": {"name": name},
            "spec": {**FAN_OUT, **extra},
        }
        refused = op.kube.kubectl(
            "apply", "-n", op.namespace, "-f", "-", input=json.dumps(manifest), check=False
        )
        assert refused.returncode != 0, name
        assert expected in refused.stderr, refused.stderr
