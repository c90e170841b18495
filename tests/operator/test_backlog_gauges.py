"""The operator serves the backlog gauges the workers' autoscaling reads, and it does so while
no worker runs (scaled to zero): WorkflowRuns of a workflow it was told of with
``--metrics-workflow`` show as pending and due under that workflow's label, one of a workflow
nobody named or registered counts under ``_other``, and the worker that then starts (as KEDA
would start one) registers its workflows and drains the backlog to 0."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.processes import wait_until
from harness.workers import Proc
from stepwise.backlog import OTHER
from tests.operator.conftest import OperatorHarness
from tests.worker.test_backlog_metrics import backlog, runs, scrape

pytestmark = [pytest.mark.kube, pytest.mark.postgres]


def test_with_no_worker_the_operator_shows_the_backlog_a_worker_then_drains(
    operator: OperatorHarness, worker: Callable[..., Proc]
) -> None:
    op = operator
    op.extra_args = ["--metrics-workflow", "fan-out"]
    op.start()
    for name in ("zero-1", "zero-2"):
        op.apply(name, {"workflow": "fan-out", "input": {"delays": [0, 0]}})
    op.apply("zero-3", {"workflow": "chain", "input": {"steps": 1, "delay": 0}})

    def seen(fan_out: int, other: int) -> Callable[[], bool]:
        def check() -> bool:
            samples = scrape(op.health_port)
            return (backlog(samples, "fan-out"), backlog(samples, OTHER)) == (fan_out, other)

        return check

    wait_until(seen(2, 1), timeout=30, what="the runs in the operator's backlog gauges")
    samples = scrape(op.health_port)
    assert runs(samples, "fan-out", "pending") == 2
    assert runs(samples, "chain", "pending") is None  # no one named it yet

    worker()
    for name in ("zero-1", "zero-2", "zero-3"):
        op.wait_phase(name, "Succeeded", timeout=60)
    wait_until(seen(0, 0), timeout=30, what="the backlog drained in the operator's gauges")
    samples = scrape(op.health_port)
    assert runs(samples, "chain", "pending") == 0  # the worker registered it
    assert runs(samples, "fan-out", "running") == 0
