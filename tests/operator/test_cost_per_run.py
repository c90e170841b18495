"""What one WorkflowRun costs the operator, with the real API server, Postgres, a ``stepwise
worker`` and the ``stepwise operator`` process: at most 3 API requests for a run that succeeds
(kopf's finalizer, one status write, the Succeeded Event), counted by the API server itself;
and no memory once it is finished but its name: the operator lets a finished WorkflowRun go,
and a later retry annotation, a user's annotation, a retry from outside Kubernetes
(``stepwise runs retry``) or a delete of it still works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.controlplane import ControlPlane
from harness.processes import wait_until
from harness.workers import Proc
from stepwise import Client
from tests.operator.conftest import OperatorHarness, counting_requests

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

Worker = Callable[..., Proc]
RUNS = 10


def test_a_run_that_succeeds_costs_at_most_three_requests(
    kube: ControlPlane, operator: OperatorHarness, worker: Worker
) -> None:
    op = operator
    worker()
    with counting_requests(kube, op) as counted:
        for i in range(RUNS):
            op.apply(f"quick-{i}", {"workflow": "chain", "input": {"steps": 1, "delay": 0}})
        for i in range(RUNS):
            op.wait_phase(f"quick-{i}", "Succeeded")
        # The Events go out in the background; the last status write is seen once the
        # operator lets the resource go (it waits for the write's watch event).
        wait_until(
            lambda: (op.health() or {})["mirror"]["requests"].get("event", 0) >= RUNS,
            timeout=60,
            what="the Succeeded Events",
        )
        op.wait_released()
        requests = counted()
    mirror = (op.health() or {})["mirror"]
    writes = mirror["requests"]["status"]
    assert mirror["requests"] == {"status": writes, "event": RUNS}, mirror
    # One status write per run that finished before its first refresh, half a second after
    # its create (all of them, unless the machine is so loaded that a one-step run took
    # longer: that run first showed Running, one write more, which is its status, not
    # overhead). Everything else: kopf's finalizer and the Succeeded Event.
    unfinished_at_first_write = writes - RUNS
    assert requests <= 3 * RUNS + unfinished_at_first_write, (
        f"{requests} requests for {RUNS} runs: {mirror['requests']}"
    )
    assert [op.reasons(f"quick-{i}") for i in range(RUNS)] == [["Succeeded"]] * RUNS


def failed_and_let_go(
    op: OperatorHarness, worker: Worker, tmp_path: Path, name: str
) -> tuple[Path, dict[str, Any]]:
    """A WorkflowRun whose run failed (its downstream is down while ``down`` exists) and that
    the operator let go; the file to remove to bring the downstream back, and the status."""
    down = tmp_path / "down"
    down.touch()
    worker()
    op.start()
    op.apply(name, {"workflow": "downstream", "input": {"down": str(down)}})
    failed = op.wait_phase(name, "Failed")
    op.wait_released()
    return down, failed


def test_a_finished_run_is_let_go_and_still_answers(
    operator: OperatorHarness, worker: Worker, tmp_path: Path
) -> None:
    op = operator
    down, _ = failed_and_let_go(op, worker, tmp_path, "order-9")

    # A user's annotation: nothing to do, nothing kept.
    op.kubectl("annotate", "wfr", "order-9", "team=billing")
    down.unlink()
    op.kubectl("annotate", "--overwrite", "wfr", "order-9", "stepwise.dev/retry=1")
    done = op.wait_phase("order-9", "Succeeded")
    assert done["retryRequest"] == "1"
    assert done["attempt"] == 2
    wait_until(lambda: "Retried" in op.reasons("order-9"), timeout=30, what="a Retried Event")
    op.wait_released()

    # A delete: kopf's finalizer is removed (the run is finished: nothing to cancel).
    op.kubectl("delete", "wfr", "order-9", "--timeout=60s")
    assert "order-9" not in op.kubectl("get", "wfr", "-o", "name")
    assert op.reasons("order-9") == ["Failed", "Retried", "Succeeded"]
    assert op.tracked() == 0


async def test_a_run_let_go_and_retried_outside_kubernetes_shows_in_its_workflowrun(
    operator: OperatorHarness, worker: Worker, tmp_path: Path
) -> None:
    op = operator
    down, failed = failed_and_let_go(op, worker, tmp_path, "order-10")
    assert (op.health() or {})["mirror"]["released"] == 1

    down.unlink()
    async with Client.connect(op.database_url) as client:
        await client.retry(failed["runId"])  # as `stepwise runs retry` does
    done = op.wait_phase("order-10", "Succeeded")
    assert done["attempt"] == 2
    op.wait_released()
    op.kubectl("delete", "wfr", "order-10", "--timeout=60s")
    wait_until(
        lambda: (op.health() or {})["mirror"]["released"] == 0,
        timeout=30,
        what="the operator to forget the deleted WorkflowRun",
    )
