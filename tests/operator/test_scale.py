"""200 WorkflowRuns applied at once: every one reaches Succeeded, with exactly one run each, and
the operator's API requests per run stay a small constant.

The requests are counted by the API server itself: a FlowSchema matches the operator's
ServiceAccount and nothing else, and ``apiserver_flowcontrol_dispatched_requests_total`` for
that FlowSchema counts every request it made (kopf's and the mirror's alike).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from harness.controlplane import ControlPlane
from harness.processes import wait_until
from harness.workers import Proc
from tests.operator.conftest import Database, OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

RUNS = 200
CREATORS = 16
MAX_REQUESTS_PER_RUN = 8
"""Measured: about 5 (finalizer, kopf's record of the create, Started and Succeeded Events,
one or two status writes). A flood of status writes would blow well past 8."""


def flow_schema(name: str, op: OperatorHarness) -> dict[str, Any]:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": "workload-low"},
            "matchingPrecedence": 850,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {
                                "name": op.service_account,
                                "namespace": op.namespace,
                            },
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


def dispatched(kube: ControlPlane, schema: str) -> int | None:
    """Requests the API server dispatched under ``schema`` so far (None: none yet)."""
    metrics = kube.kubectl("get", "--raw", "/metrics").stdout
    pattern = (
        r"^apiserver_flowcontrol_dispatched_requests_total\{"
        rf'flow_schema="{re.escape(schema)}",priority_level="workload-low"\}} (\S+)$'
    )
    match = re.search(pattern, metrics, re.MULTILINE)
    return int(float(match[1])) if match else None


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
    schema = f"stepwise-test-{op.namespace}"
    kube.apply(json.dumps(flow_schema(schema, op)))
    try:
        worker(concurrency=100)
        op.log_level = "WARNING"
        op.start()
        # The FlowSchema is in force once it has counted the operator's start-up requests.
        wait_until(lambda: dispatched(kube, schema), timeout=60, what="the FlowSchema to count")
        before = dispatched(kube, schema) or 0

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
        # Every Started and Succeeded Event is out (they are posted in the background).
        wait_until(
            lambda: (
                (op.health() or {}).get("mirror", {}).get("requests", {}).get("event") == 2 * RUNS
            ),
            timeout=60,
            what="the operator to post its Events",
        )
        requests = (dispatched(kube, schema) or 0) - before
    finally:
        kube.kubectl("delete", "flowschema", schema, "--ignore-not-found")

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
