"""Seeing a run: ``runs show`` as a readable view and as the full JSON document, short id
prefixes, ``runs list`` with a header, ``--json`` and a time window, and live progress in
``start --wait`` and ``run`` (steps, durable sleeps, workflow retries). On both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.workers import Procs
from stepwise import Client, RunStatus
from stepwise.backends.base import StepSleeping, StepStarted, SuspendRun

FLOWS = Path(__file__).with_name("flows.py")


def ok(result: object) -> str:
    assert getattr(result, "returncode") == 0, getattr(result, "stderr")  # noqa: B009
    return str(getattr(result, "stdout"))  # noqa: B009


def test_runs_show_is_readable_and_json_is_the_full_document(
    procs: Procs, backend_url: str
) -> None:
    ran = procs.cli("run", str(FLOWS), "cli-story", "--database-url", backend_url)
    assert json.loads(ok(ran)) == {"length": 500}
    run_id = ran.stderr.split("run ", 1)[1].split()[0]

    shown = ok(procs.cli("runs", "show", run_id[:8], "--database-url", backend_url))
    lines = shown.splitlines()
    assert lines[0] == f"run         {run_id}"
    assert "status      succeeded" in lines
    [header] = [line for line in lines if "STEP" in line]
    assert header.split() == ["STEP", "STATUS", "ATTEMPTS", "DURATION", "OUTPUT", "/", "ERROR"]
    rows = {line.split()[1]: line.split() for line in lines if line.startswith(("✓", "✗"))}
    assert rows["long-output"][2:4] == ["completed", "1"]
    assert rows["long-output"][-1].endswith("…")  # the output, cut to one line
    assert len(rows["long-output"][-1]) < 100
    assert rows["charge"][2:4] == ["failed", "2"]
    assert "ValueError: card declined for 250 cents at " in shown
    assert rows["nap"][2] == "completed"
    assert "slept until" in shown
    # The error in full, as text: the user's line first, then the traceback's own lines.
    assert "step 'charge', attempt 1 error:" in shown  # every attempt's error, oldest first
    assert shown.index("step 'charge', attempt 1 error:") < shown.index(
        "step 'charge', attempt 2 error:"
    )
    line = (
        FLOWS.read_text()
        .splitlines()
        .index('    raise ValueError(f"card declined for {cents} cents")')
    )
    assert f"flows.py:{line + 1} in charge: ValueError: card declined for 250 cents" in shown
    assert "\n  Traceback (most recent call last):\n" in shown
    assert '    raise ValueError(f"card declined for {cents} cents")' in shown
    assert "\\n" not in shown

    doc = json.loads(ok(procs.cli("runs", "show", run_id, "--json", "--database-url", backend_url)))
    assert doc["id"] == run_id
    assert doc["status"] == "succeeded"
    steps = {step["name"]: step for step in doc["steps"]}
    assert steps["long-output"]["output"] == "x" * 500
    assert steps["charge"]["attempts"] == 2
    assert steps["charge"]["error"]["type"] == "ValueError"
    assert [e["attempt"] for e in steps["charge"]["error"]["earlier"]] == [1]
    assert "Traceback (most recent call last)" in steps["charge"]["error"]["traceback"]
    assert steps["nap"]["wake_at"] is not None
    assert steps["long-output"]["seconds"] >= 0


async def test_a_sleeping_step_says_when_it_wakes(procs: Procs, backend_url: str) -> None:
    async with Client.connect(backend_url) as client:
        run = await client.start("sleepy", {"n": 1})
        [claimed] = await client.backend.claim_runs("w", ["sleepy"], 1, 30.0)
        now = datetime.now(UTC)
        wake = now + timedelta(hours=2, minutes=30)
        token = claimed.lease_token
        await client.backend.write(
            [
                StepStarted(token, run.id, "nap", 1, now),
                StepSleeping(token, run.id, "nap", wake, now),
                SuspendRun(token, run.id, wake),
            ]
        )
    shown = ok(procs.cli("runs", "show", run.id, "--database-url", backend_url))
    [row] = [line for line in shown.splitlines() if line.startswith("⏾")]
    assert row.split()[1:3] == ["nap", "sleeping"]
    assert f"wakes {wake:%Y-%m-%d %H:%M:%S} UTC (in 2h " in row
    assert "status      sleeping, due " in shown


async def test_a_unique_prefix_names_a_run_and_an_ambiguous_one_lists_them(
    procs: Procs, backend_url: str
) -> None:
    ids = [
        "abcdef01-0000-4000-8000-000000000001",
        "abcdef01-0000-4000-8000-000000000002",
        "12345678-0000-4000-8000-000000000003",
    ]
    async with Client.connect(backend_url) as client:
        for run_id in ids:
            await client.start("some-flow", None, run_id=run_id)
    database = ["--database-url", backend_url]
    for prefix in ("1", "1234", "12345678-0", ids[2], ids[2].upper()):
        shown = ok(procs.cli("runs", "show", prefix, *database))
        assert shown.splitlines()[0] == f"run         {ids[2]}"
    ambiguous = procs.cli("runs", "show", "abcdef01-0000", *database)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.strip() == (
        f"stepwise: error: run id prefix 'abcdef01-0000' is ambiguous: it starts {ids[0]}, {ids[1]}"
    )
    for missing in ("9", "abcdef01x", "abcdef010", ids[0] + "0"):
        refused = procs.cli("runs", "show", missing, *database)
        assert refused.returncode == 2
        assert f"no run with id {missing!r}" in refused.stderr
    canceled = ok(procs.cli("runs", "cancel", "abcdef01-0000-4000-8000-000000000002", *database))
    assert canceled.strip() == f"run {ids[1]} canceled"
    canceled = ok(procs.cli("runs", "cancel", "1234", *database))
    assert canceled.strip() == f"run {ids[2]} canceled"


async def test_runs_list_has_a_header_json_and_a_time_window(
    procs: Procs, backend_url: str
) -> None:
    async with Client.connect(backend_url) as client:
        first = await client.start("listed", {"n": 1})
        second = await client.start("listed", {"n": 2})
    database = ["--database-url", backend_url]
    table = ok(procs.cli("runs", "list", *database)).splitlines()
    assert table[0].split() == ["ID", "WORKFLOW", "STATUS", "CREATED", "DURATION"]
    assert [line.split()[0] for line in table[1:]] == [second.id, first.id]

    listed = json.loads(ok(procs.cli("runs", "list", "--json", *database)))
    assert [run["id"] for run in listed] == [second.id, first.id]
    assert listed[0]["status"] == RunStatus.PENDING.value

    created = second.created_at
    window = {
        ("--since", "1h"): [second.id, first.id],
        ("--until", "1h"): [],
        ("--since", (created + timedelta(minutes=1)).isoformat()): [],
        ("--since", created.isoformat()): [second.id],
        ("--until", created.isoformat()): [first.id],
    }
    for flag, expected in window.items():
        found = json.loads(ok(procs.cli("runs", "list", *flag, "--json", *database)))
        assert [run["id"] for run in found] == expected, flag

    empty = procs.cli("runs", "list", "--until", "1h", *database)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "no runs found\n")

    refused = procs.cli("runs", "list", "--since", "soon", *database)
    assert refused.returncode == 2
    assert "Invalid value for '--since': 'soon' is neither a date and time" in refused.stderr


def test_start_wait_shows_progress_sleeps_and_workflow_retries(
    procs: Procs, backend_url: str, tmp_path: Path
) -> None:
    procs.worker(FLOWS, backend_url, ready=True)
    database = ["--database-url", backend_url]
    story = procs.cli("start", "cli-story", "--wait", *database)
    assert json.loads("".join(ok(story).splitlines()[1:])) == {"length": 500}
    assert "  ✓ long-output (" in story.stderr
    assert "  ✗ charge: ValueError: card declined for 250 cents at " in story.stderr
    assert "  ⏾ nap: s" in story.stderr  # sleeps until …, or slept until … when it was quick

    flaky = procs.cli(
        "start", "cli-flaky", "--input", json.dumps({"marker": str(tmp_path / "m")}), "--wait",
        *database,
    )  # fmt: skip
    assert json.loads("".join(ok(flaky).splitlines()[1:])) == "done"
    assert "  ↻ workflow retried after RuntimeError: downstream is down at " in flaky.stderr
    assert ": attempt 2 due " in flaky.stderr


def test_run_announces_sleeps_and_workflow_retries(
    procs: Procs, backend_url: str, tmp_path: Path
) -> None:
    database = ["--database-url", backend_url]
    story = procs.cli("run", str(FLOWS), "cli-story", *database)
    ok(story)
    assert "  ⏾ nap: sleeps until " in story.stderr or "  ⏾ nap: slept until " in story.stderr
    flaky = procs.cli(
        "run", str(FLOWS), "cli-flaky", "--input", json.dumps({"marker": str(tmp_path / "m")}),
        *database,
    )  # fmt: skip
    assert json.loads(ok(flaky)) == "done"
    assert "  ↻ workflow retried after RuntimeError: downstream is down" in flaky.stderr
