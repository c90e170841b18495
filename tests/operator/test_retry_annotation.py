"""Retry a failed WorkflowRun with kubectl alone: ``kubectl annotate wfr NAME
stepwise.dev/retry=VALUE``. With the real API server, Postgres, a ``stepwise worker`` and the
``stepwise operator`` process: the phase goes back to Running and on to its new end, a
``Retried`` Event tells it, the completed step is not run again, and the operator acts once per
value, also after a restart; a run that cannot be retried gets a Warning instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.processes import wait_until
from harness.workers import Proc
from stepwise.backends.base import RunStatus
from tests.operator.conftest import Database, OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

Worker = Callable[..., Proc]


def annotate(op: OperatorHarness, name: str, value: str) -> None:
    op.kubectl("annotate", "--overwrite", "wfr", name, f"stepwise.dev/retry={value}")


def test_a_failed_run_is_retried_by_an_annotation_once_per_value(
    operator: OperatorHarness, worker: Worker, database: Database, tmp_path: Path
) -> None:
    op, down = operator, tmp_path / "down"
    down.touch()
    worker()
    op.start()
    uid = op.apply("order-7", {"workflow": "downstream", "input": {"down": str(down)}})["metadata"][
        "uid"
    ]
    failed = op.wait_phase("order-7", "Failed")
    assert "the downstream is down" in failed["error"]["message"]
    prepared = next(s for s in database.steps(uid) if s.key == "prepare").finished_at

    down.unlink()
    annotate(op, "order-7", "1")
    phases: list[str] = []

    def record_phase(status: dict[str, object]) -> bool:
        phase = str(status.get("phase"))
        if not phases or phases[-1] != phase:
            phases.append(phase)
        return phase == "Succeeded"

    done = op.wait_status("order-7", record_phase, "the retried run to succeed", timeout=60)
    assert done["output"] == "prepared, called"
    assert done["retryRequest"] == "1"
    assert done["attempt"] == 2
    assert phases[0] in ("Failed", "Pending", "Running")
    assert phases[-1] == "Succeeded"
    assert set(phases) <= {"Failed", "Pending", "Running", "Succeeded"}
    # the completed step kept its stored result: it did not run again
    assert next(s for s in database.steps(uid) if s.key == "prepare").finished_at == prepared
    wait_until(lambda: "Retried" in op.reasons("order-7"), timeout=30, what="a Retried Event")
    [retried] = [e for e in op.events("order-7") if e["reason"] == "Retried"]
    assert retried["type"] == "Normal"
    assert "stepwise.dev/retry=1" in retried["message"]

    # Once per value: a restarted operator finds the value handled in the status.
    op.stop()
    op.start()
    annotate(op, "order-7", "2")  # a new value on a succeeded run: refused, said once
    wait_until(
        lambda: "RetryRefused" in op.reasons("order-7"), timeout=30, what="a RetryRefused Event"
    )
    refused = op.wait_status("order-7", lambda s: s.get("retryRequest") == "2", "value 2 handled")
    assert refused["phase"] == "Succeeded"
    [warning] = [e for e in op.events("order-7") if e["reason"] == "RetryRefused"]
    assert warning["type"] == "Warning"
    assert "stepwise.dev/retry=2" in warning["message"]
    assert "only a failed or canceled run can be retried" in warning["message"]
    assert op.reasons("order-7").count("Retried") == 1
    assert database.run(uid).status is RunStatus.SUCCEEDED
    assert database.run(uid).attempt == 2
