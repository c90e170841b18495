"""A run's logs in the CLI, on both backends: ``runs logs`` (and ``--json``), ``runs logs -f``
following a run until it ends, the last lines at the end of ``runs show``; and the worker's own
log as JSON lines (``--log-format json``, ``STEPWISE_LOG_FORMAT``) with a line per run start and
outcome that carries ``run_id`` and ``workflow``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client

FLOWS = Path(__file__).with_name("log_flows.py")


def ok(result: object) -> str:
    assert getattr(result, "returncode") == 0, getattr(result, "stderr")  # noqa: B009
    return str(getattr(result, "stdout"))  # noqa: B009


def test_runs_logs_and_the_end_of_runs_show(procs: Procs, backend_url: str) -> None:
    ran = procs.cli("run", str(FLOWS), "cli-logged", "--input", "{}", "--database-url", backend_url)
    ok(ran)
    run_id = ran.stderr.split("run ", 1)[1].split()[0]

    printed = ok(procs.cli("runs", "logs", run_id[:8], "--database-url", backend_url))
    rows = printed.splitlines()
    assert len(rows) == 4, printed
    assert rows[0].endswith("INFO    [workflow] hello from the body")
    assert rows[1].endswith("WARNING [greet] greeting you")
    assert rows[2].endswith("INFO    [greet] greeted")
    assert rows[3].endswith("INFO    [workflow] bye")

    as_json = ok(procs.cli("runs", "logs", run_id, "--json", "--database-url", backend_url))
    docs = [json.loads(row) for row in as_json.splitlines()]
    assert [(d["step"], d["level"], d["logger"], d["message"]) for d in docs] == [
        (None, "INFO", "stepwise.workflow", "hello from the body"),
        ("greet", "WARNING", "shop.greeter", "greeting you"),
        ("greet", "INFO", "stepwise.workflow", "greeted"),
        (None, "INFO", "stepwise.workflow", "bye"),
    ]
    assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs)

    shown = ok(procs.cli("runs", "show", run_id, "--database-url", backend_url))
    tail = shown.split("LOGS (the last lines; all of them: stepwise runs logs RUN_ID)\n", 1)[1]
    assert tail.splitlines() == rows
    doc = json.loads(ok(procs.cli("runs", "show", run_id, "--json", "--database-url", backend_url)))
    assert doc["logs"] == rows


async def test_runs_logs_follow_prints_lines_as_they_come_until_the_run_ends(
    procs: Procs, backend_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with Client.connect(backend_url) as client:
        procs.worker(FLOWS, backend_url, name="worker")
        run = await client.start("cli-logged", {"gate": str(gate), "who": "Ada"})
        argv = [sys.executable, "-m", "stepwise", "runs", "logs", run.id, "-f"]
        follower = procs.spawn([*argv, "--database-url", backend_url], name="follow")
        follower.wait_for_log("[greet] greeting Ada", 60)
        assert follower.alive
        assert "bye" not in follower.log()
        gate.touch()
        assert follower.wait(60) == 0, follower.tail()
        assert (await client.get(run.id)).finished
    rows = follower.log().splitlines()
    assert [row.split("] ", 1)[1] for row in rows] == [
        "hello from the body",
        "greeting Ada",
        "greeted",
        "bye",
    ]


async def test_the_worker_logs_json_lines_with_a_line_per_run_outcome(
    procs: Procs, backend_url: str
) -> None:
    async with Client.connect(backend_url) as client:
        worker = procs.worker(
            FLOWS, backend_url, name="json-worker", env={"STEPWISE_LOG_FORMAT": "json"}
        )
        run = await client.start("cli-logged", {})
        await client.wait_finished(run.id, timeout=60)

        async def outcome_logged() -> bool:
            return '"action": "run_succeeded"' in worker.log()

        await async_wait_until(outcome_logged, 30, worker.tail)
    records = [json.loads(row) for row in worker.log().splitlines() if row.startswith("{")]
    assert len(records) == len(worker.log().splitlines()), worker.tail()  # every line is JSON
    ours = [r for r in records if r.get("run_id") == run.id and "action" in r]
    assert [(r["action"], r["workflow"], r["level"]) for r in ours] == [
        ("run_started", "cli-logged", "INFO"),
        ("run_succeeded", "cli-logged", "INFO"),
    ]
    assert ours[1]["message"] == f"run {run.id} (workflow cli-logged) succeeded"
    # The run's own lines reach the worker's log too, with the run and the step.
    [greeting] = [r for r in records if r["message"] == "greeting you"]
    assert greeting["logger"] == "shop.greeter"
    [greeted] = [r for r in records if r["message"] == "greeted"]
    assert (greeted["run_id"], greeted["step"]) == (run.id, "greet")
