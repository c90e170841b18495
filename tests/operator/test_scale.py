"""200 WorkflowRuns applied at once: every one reaches Succeeded, with exactly one run each, the
operator's API requests per run stay a small constant (counted by the API server itself:
``counting_requests``), and the operator keeps none of them once they are finished.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.controlplane import ControlPlane
from harness.processes import wait_until
from harness.workers import Proc
from tests.operator.conftest import Database, OperatorHarness, counting_requests

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

RUNS = 200
CREATORS = 16
MAX_REQUESTS_PER_RUN = 5
"""Measured: 3 to 3.5 (kopf's finalizer, the Succeeded Event, one status write, or two for a run
still running at its first refresh). A flood of status writes would blow well past 5."""


def process_figures(pid: int) -> tuple[int, int]:
    """The peak resident set (MiB) and the thread count of process ``pid``: reported, never
    asserted."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmHWM"].split()[0]) // 1024, int(fields["Threads"])


def test_two_hundred_at_once(
    kube: ControlPlane,
    operator: OperatorHarness,
    worker: Callable[..., Proc],
    database: Database,
    record_property: Callable[[str, object], None],
) -> None:
    op = operator
    worker(concurrency=100)
    op.log_level = "WARNING"
    with counting_requests(kube, op) as counted:
        collection = f"/apis/stepwise.dev/v1alpha1/namespaces/{op.namespace}/workflowruns"

        def create(i: int) -> None:
            body = {
                "apiVersion": "stepwise.dev/v1alpha1",
                "kind": "WorkflowRun",
                "metadata": {"name": f"load-{i:03d}"},
                "spec": {"workflow": "fan-out", "input": {"delays": [0.1, 0.2, 0.3], "echo": i}},
            }
            kube.api.request("POST", collection, body)

        started = time.monotonic()
        with ThreadPoolExecutor(CREATORS) as pool:
            list(pool.map(create, range(RUNS)))

        def phases() -> Counter[str]:
            items = kube.api.request("GET", collection)["items"]
            return Counter((item.get("status") or {}).get("phase", "-") for item in items)

        wait_until(
            lambda: phases()["Succeeded"] == RUNS,
            timeout=120,
            interval=0.5,
            what=f"{RUNS} WorkflowRuns to succeed (last seen: {dict(phases())})",
        )
        took = time.monotonic() - started
        # Every Succeeded Event is out (they are posted in the background), and the operator
        # has let every finished resource go.
        wait_until(
            lambda: (op.health() or {}).get("mirror", {}).get("requests", {}).get("event") == RUNS,
            timeout=60,
            what="the operator to post its Events",
        )
        op.wait_released()
        requests = counted()

    items = kube.api.request("GET", collection)["items"]
    outputs = {item["metadata"]["name"]: item["status"]["output"]["echo"] for item in items}
    assert outputs == {f"load-{i:03d}": i for i in range(RUNS)}
    runs = database.runs("fan-out")
    assert len(runs) == RUNS
    assert {run.id for run in runs} == {item["metadata"]["uid"] for item in items}
    assert all(run.claims == 1 for run in runs)

    mirror = (op.health() or {})["mirror"]
    per_run = requests / RUNS
    assert op.proc is not None
    peak_rss, threads = process_figures(op.proc.pid)
    record_property("api_requests_per_run", round(per_run, 2))
    record_property("operator_peak_rss_mib", peak_rss)
    record_property("operator_threads", threads)
    print(
        f"\n{RUNS} WorkflowRuns Succeeded in {took:.1f}s; the operator made {requests} API "
        f"requests ({per_run:.2f} per run), of which the mirror's: {mirror['requests']}; "
        f"its peak RSS {peak_rss} MiB, {threads} threads"
    )
    assert per_run <= MAX_REQUESTS_PER_RUN
    assert mirror["requests"]["status"] <= 3 * RUNS


def test_a_thousand_steps_do_not_flood_the_api_server(
    operator: OperatorHarness, worker: Callable[..., Proc]
) -> None:
    op = operator
    worker()
    op.start()
    started = time.monotonic()
    op.apply("long-chain", {"workflow": "chain", "input": {"steps": 1000, "delay": 0}})
    done = op.wait_phase("long-chain", "Succeeded", timeout=120)
    took = time.monotonic() - started

    assert done["steps"] == "1000/1000"
    assert done["output"] == 1000
    assert len(done["stepDetails"]) == 20
    assert done["stepsOmitted"] == 980
    assert done["stepDetails"][-1]["name"] == "link-999"
    assert len(json.dumps(op.get("long-chain"))) < 16_000
    # At most one status write per half second, plus the first and the last.
    writes = (op.health() or {})["mirror"]["requests"]["status"]
    print(f"\n1000 steps in {took:.1f}s: {writes} status writes")
    assert writes <= took / 0.5 + 2, f"{writes} status writes in {took:.1f}s"
