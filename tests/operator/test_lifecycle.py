"""A WorkflowRun's life with everything real: the API server, Postgres, ``stepwise worker``
processes and the ``stepwise operator`` process acting as a ServiceAccount bound to exactly the
chart's RBAC.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.postgres import PostgresServer
from harness.processes import free_port, wait_until
from harness.workers import Proc
from stepwise.backends.base import RunStatus, StepStatus
from tests.operator.conftest import Database, OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

Worker = Callable[..., Proc]
WORKFLOWS = Path(__file__).with_name("workflows.py")
DURATION = re.compile(r"^\d+(\.\d)?(ms|s)$|^\d+m\d+s$")
VISIBLE_WITHIN = 3.0
"""Seconds from a step's completion in Postgres to ``kubectl get wfr`` showing it: about one
normally (0.5 s of coalescing plus a patch); the margin is for a loaded 2-core test machine."""


def _line_of(text: str) -> int:
    """The number of the one line of ``workflows.py`` that holds ``text``."""
    [line] = [n for n, code in enumerate(WORKFLOWS.read_text().splitlines(), 1) if text in code]
    return line


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def completed(at_least: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status.get("stepCounts", {}).get("completed", 0) >= at_least


def test_apply_shows_live_progress_then_the_output(
    cluster_operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = cluster_operator
    worker()
    op.start()
    uid = op.apply(
        "fetch-42", {"workflow": "fan-out", "input": {"delays": [0.5, 5, 5], "echo": "hi"}}
    )["metadata"]["uid"]

    # Parallel steps while they run: one of three done, two in flight.
    running = op.wait_status(
        "fetch-42", lambda s: s.get("steps") == "1/3", "one of three parallel steps done"
    )
    seen = time.time()
    header, row = op.table()
    assert header == ["NAME", "WORKFLOW", "PHASE", "STEPS", "AGE", "DURATION"]
    assert row[:4] == ["fetch-42", "fan-out", "Running", "1/3"]
    assert running["phase"] == "Running"
    assert [(s["name"], s["state"]) for s in running["stepDetails"]] == [
        ("part-0", "Completed"),
        ("part-1", "Running"),
        ("part-2", "Running"),
    ]
    assert running["message"] == "running part-1, part-2"
    first = next(s for s in database.steps(uid) if s.key == "part-0")
    assert first.finished_at is not None
    lag = seen - first.finished_at.timestamp()
    assert lag < VISIBLE_WITHIN, f"a completed step took {lag:.2f}s to show"

    done = op.wait_phase("fetch-42", "Succeeded")
    assert done["output"] == {"parts": [1, 2, 3], "total": 6, "echo": "hi"}
    assert done["steps"] == "4/4"
    assert done["runId"] == uid
    assert done["observedGeneration"] == 1
    assert condition(done, "Succeeded")["status"] == "True"
    assert condition(done, "Finished")["status"] == "True"
    _, row = op.table("-o", "wide")
    assert row[:4] == ["fetch-42", "fan-out", "Succeeded", "4/4"]
    assert DURATION.match(row[5]), row
    assert row[6:] == ["succeeded"]

    described = op.kubectl("describe", "wfr", "fetch-42")
    for line in (
        r"^  Phase:\s+Succeeded$",
        r"^  Steps:\s+4/4$",
        r"^  Run Id:\s+" + uid + "$",
        r"^    Name:\s+part-1$",
        r"^    State:\s+Completed$",
        r"^    Total:\s+6$",
        r"^  Normal\s+Succeeded\s+.*run " + uid + r" succeeded in \S+ \(4/4 steps\)$",
    ):
        assert re.search(line, described, re.MULTILINE), f"{line!r} not in:\n{described}"

    assert [run.id for run in database.runs()] == [uid]
    assert op.reasons("fetch-42") == ["Succeeded"]
    op.wait_released()  # finished: the operator keeps nothing of it
    metrics = _get(f"http://127.0.0.1:{op.health_port}/metrics")
    assert "stepwise_operator_workflowruns 0.0\n" in metrics
    # The operator serves the backlog gauges (read from the database) and its process metrics.
    assert 'stepwise_runs{status="pending",workflow="fan-out"} 0.0\n' in metrics
    assert 'stepwise_backlog{workflow="fan-out"} 0.0\n' in metrics
    assert "\nprocess_cpu_seconds_total " in metrics
    writes = re.search(
        r'^stepwise_operator_api_requests_total\{kind="status"\} (\d+)\.0$', metrics, re.M
    )
    assert writes, metrics
    assert 2 <= int(writes[1]) <= 10, metrics
    assert "forbidden" not in op.log().lower()
    # kopf's bookkeeping stays out of the status: only our fields are there.
    assert set(done) <= set(op.status("fetch-42"))
    assert not [key for key in done if "kopf" in key]


def test_delete_cancels_a_run_in_flight(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    health_port = free_port()
    worker(health_port=health_port)
    op.start()
    uid = op.apply("long", {"workflow": "chain", "input": {"steps": 40, "delay": 0.25}})[
        "metadata"
    ]["uid"]
    op.wait_status("long", completed(3), "three steps done")

    op.kubectl("delete", "wfr", "long", "--timeout=60s")  # returns once the resource is gone

    assert "NotFound" in op.kubectl("get", "wfr", "long", check=False)
    run = database.run(uid)
    assert run.status is RunStatus.CANCELED
    assert run.finished_at is not None
    # The worker lets go at the next step boundary and starts nothing after the cancel.
    wait_until(
        lambda: _active_runs(health_port) == 0, timeout=30, what="the worker to drop the run"
    )
    steps = database.steps(uid)
    assert 3 <= len(steps) < 40
    assert all(s.started_at is not None and s.started_at <= run.finished_at for s in steps)
    assert len(database.steps(uid)) == len(steps)
    assert "Canceled" in op.reasons("long")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        text: str = answer.read().decode()
        return text


def _active_runs(port: int) -> float:
    text = _get(f"http://127.0.0.1:{port}/metrics")
    match = re.search(r"^stepwise_active_runs (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match[1])


def test_a_failed_run_then_its_ttl(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    worker()
    op.start()
    uid = op.apply(
        "doomed",
        {"workflow": "fails", "input": {"why": "card declined"}, "ttlSecondsAfterFinished": 2},
    )["metadata"]["uid"]

    failed = op.wait_phase("doomed", "Failed")
    assert failed["error"]["type"] == "StepFailed"
    assert "ValueError: card declined" in failed["error"]["message"]
    assert [(s["name"], s["state"]) for s in failed["stepDetails"]] == [
        ("ok", "Completed"),
        ("explode", "Failed"),
    ]
    # The user's line leads the story: where the step function raised.
    boom = f"workflows.py:{_line_of('raise ValueError(')} in boom"
    assert failed["stepDetails"][1]["error"].startswith("ValueError: card declined at ")
    assert failed["stepDetails"][1]["error"].endswith(boom)
    assert failed["message"].endswith(boom)
    assert failed["steps"] == "1/2"
    assert (condition(failed, "Succeeded")["status"], condition(failed, "Succeeded")["reason"]) == (
        "False",
        "Failed",
    )
    warnings = [e for e in op.events("doomed") if e["reason"] == "Failed"]
    assert [e["type"] for e in warnings] == ["Warning"]
    assert "card declined" in warnings[0]["message"]

    # ttlSecondsAfterFinished: the resource goes; the run stays in the database.
    wait_until(
        lambda: "NotFound" in op.kubectl("get", "wfr", "doomed", check=False),
        timeout=30,
        what="the finished WorkflowRun to be deleted by its TTL",
    )
    gone_after = time.time() - database.run(uid).finished_at.timestamp()  # type: ignore[union-attr]
    assert gone_after >= 2
    assert database.run(uid).status is RunStatus.FAILED
    assert "forbidden" not in op.log().lower()  # the namespaced RBAC covers the TTL's delete


def test_no_worker_yet_is_pending_with_a_condition(
    operator: OperatorHarness, worker: Worker
) -> None:
    op = operator
    op.start()
    op.apply("waiting", {"workflow": "fan-out", "input": {"delays": [0, 0, 0]}})

    pending = op.wait_status(
        "waiting",
        lambda s: condition(s, "WorkerAvailable").get("status") == "False",
        "WorkerAvailable=False",
    )
    reason = "no live worker serves workflow 'fan-out'"
    assert pending["phase"] == "Pending"  # not Failed: a rolling deploy may bring a worker
    available = condition(pending, "WorkerAvailable")
    assert (available["reason"], available["message"]) == ("NoWorker", reason)
    assert op.kubectl("get", "wfr", "waiting", "-o", "wide").splitlines()[1].endswith(reason)

    worker()
    served = op.wait_phase("waiting", "Succeeded", timeout=60)
    assert condition(served, "WorkerAvailable")["status"] == "True"


def test_large_input_and_large_output(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    worker()
    op.start()
    blob = "x" * 200 * 1024
    uid = op.apply("big-in", {"workflow": "fan-out", "input": {"delays": [0, 0, 0], "blob": blob}})[
        "metadata"
    ]["uid"]
    op.wait_phase("big-in", "Succeeded")
    annotations = op.get("big-in")["metadata"]["annotations"]
    # kubectl's own copy of the manifest holds the input; kopf keeps no record of the spec
    # (the annotations of an object share a 256 KiB budget).
    assert len(annotations["kubectl.kubernetes.io/last-applied-configuration"]) > len(blob)
    assert not [key for key in annotations if key.startswith("operator.stepwise.dev/")]
    assert database.run(uid).input["blob"] == blob

    op.apply("big-out", {"workflow": "big-output", "input": {"size": 100_000}})
    done = op.wait_phase("big-out", "Succeeded")
    assert "output" not in done
    assert done["outputTruncated"] is True
    assert done["outputPreview"].startswith('"xxxxxxxx')
    assert done["message"].startswith("succeeded; output too large to show: stepwise runs show ")
    assert len(str(op.get("big-out"))) < 16_000


def test_operator_killed_and_restarted_loses_nothing(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    worker()
    op.start()
    first = op.apply("first", {"workflow": "chain", "input": {"steps": 12, "delay": 0.4}})
    op.wait_status("first", completed(2), "two steps done")

    op.kill()
    # While it is down: a new resource, a create to be delivered again (the status no longer
    # names the run, as if the operator had died between starting it and writing the
    # status), and "first"'s run finishing unobserved.
    second = op.apply("second", {"workflow": "fan-out", "input": {"delays": [0, 0, 0]}})
    op.kubectl(
        "patch", "wfr", "first", "--subresource=status", "--type=json",
        "-p", '[{"op": "remove", "path": "/status/runId"}]',
    )  # fmt: skip
    first_id, second_id = first["metadata"]["uid"], second["metadata"]["uid"]
    wait_until(
        lambda: database.run(first_id).status is RunStatus.SUCCEEDED,
        timeout=60,
        what="the first run to finish while the operator is down",
    )
    assert op.status("first")["phase"] == "Running"
    assert op.status("second") == {}

    op.start()
    converged = op.wait_phase("first", "Succeeded")
    op.wait_phase("second", "Succeeded")

    assert converged["steps"] == "12/12"
    assert converged["output"] == 12
    assert sorted(run.id for run in database.runs()) == sorted([first_id, second_id])
    assert all(s.status is StepStatus.COMPLETED for s in database.steps(first_id))
    # One Succeeded each (the replayed create found its run).
    assert op.reasons("first") == ["Succeeded"]
    assert op.reasons("second") == ["Succeeded"]


def test_postgres_restarted_mid_run(
    operator: OperatorHarness, worker: Worker, pg_server: PostgresServer
) -> None:
    op = operator
    worker()
    proc = op.start()
    op.apply("steady", {"workflow": "chain", "input": {"steps": 10, "delay": 0.3}})
    op.wait_status("steady", completed(2), "two steps done")

    pg_server.restart("immediate")  # a crash: every connection drops, LISTEN included

    done = op.wait_phase("steady", "Succeeded", timeout=90)
    assert done["steps"] == "10/10"
    op.apply("after", {"workflow": "fan-out", "input": {"delays": [0, 0, 0]}})
    op.wait_phase("after", "Succeeded", timeout=60)
    assert proc.alive
