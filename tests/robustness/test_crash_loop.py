"""Every run ends: a run that keeps killing or blocking its worker is failed, naming the step.

Real worker processes, restarted whenever none is alive (as a Deployment would). A step that
ends its process (``os._exit``, SIGKILL) stores nothing, so neither its retry policy nor the
step-attempt cap ever sees it; the claims count the deaths instead, and the claim after the
limit fails the run with ``CrashLoop``. Deaths separated by completed steps are progress, not
a loop: such a run finishes however often its worker dies. An async step that blocks the
event loop past the lease is a slow-motion death (other workers take the run over); it is
counted the same way, and the worker's watchdog reports the block with the culprit's stack.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.workers import Procs, async_wait_until
from stepwise import Client, Run, RunStatus
from stepwise.operator import status
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("flows.py")
LIMIT = 3
LEASE = 1.0


async def _finished_with_a_worker_alive(
    client: Client, run_id: str, procs: Procs, url: str, *, workers: int = 1
) -> Run:
    """Wait for the run to finish, starting a worker whenever fewer than ``workers`` live."""

    async def finished() -> Run | None:
        while sum(proc.alive for proc in procs.procs) < workers:
            procs.worker(
                FLOWS,
                url,
                lease=LEASE,
                name=f"worker-{len(procs.procs)}",
                args=["--max-recovery-attempts", str(LIMIT)],
            )
        run = await client.get(run_id)
        return run if run.status.finished else None

    return await async_wait_until(
        finished, 120, lambda: f"run {run_id} finishes\n{procs.tails()}", interval=0.1
    )


def _starts(ledger: Path, key: str) -> int:
    return sum(1 for e in read_ledger(ledger) if e.event == "start" and e.key == key)


@pytest.mark.parametrize("how", ["exit", "sigkill"])
async def test_a_step_that_kills_its_worker_fails_the_run_naming_the_step(
    backend_url: str, procs: Procs, tmp_path: Path, how: str
) -> None:
    ledger = tmp_path / "ledger"
    async with Client.connect(backend_url) as client:
        run = await client.start("robust-die", {"ledger": str(ledger), "how": how})
        finished = await _finished_with_a_worker_alive(client, run.id, procs, backend_url)
        # The worker that failed the run is alive and serves the next one.
        echoed = await client.wait_finished(
            (await client.start("robust-echo", "after the crash loop")).id, timeout=60
        )
        stored = await client.stored(run.id)
    assert stored is not None
    resource = status.build(
        *stored, previous=None, generation=1, waiting_reason=None, now=datetime.now(UTC)
    )
    shown = procs.cli("runs", "show", run.id, "--json", "--database-url", backend_url)

    assert finished.status is RunStatus.FAILED, procs.tails()
    assert finished.error is not None
    assert finished.error["type"] == "CrashLoop"
    assert (
        f"its worker died {LIMIT} times in a row while step 'resize' was running"
        in finished.error["message"]
    )
    assert _starts(ledger, "resize") == LIMIT
    assert _starts(ledger, "prepare") == 1
    assert finished.claims == LIMIT + 1
    assert finished.recoveries == LIMIT
    # The crash loop is visible where users look: `runs show` and the WorkflowRun's status.
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["recoveries"] == LIMIT
    assert json.loads(shown.stdout)["error"]["type"] == "CrashLoop"
    assert resource["message"].startswith(
        f"CrashLoop: its worker died {LIMIT} times in a row while step 'resize' was running"
    )
    assert echoed.status is RunStatus.SUCCEEDED
    assert any(f"run {run.id} failed: its worker died" in proc.log() for proc in procs.procs)


async def test_deaths_between_completed_steps_are_progress_not_a_loop(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, rounds = tmp_path / "ledger", LIMIT + 2
    async with Client.connect(backend_url) as client:
        run = await client.start(
            "robust-die-after-progress", {"ledger": str(ledger), "steps": rounds}
        )
        finished = await _finished_with_a_worker_alive(client, run.id, procs, backend_url)

    assert finished.status is RunStatus.SUCCEEDED, f"{finished.error}\n{procs.tails()}"
    assert finished.output == rounds
    assert finished.claims == rounds + 1  # more deaths than the limit, each after progress
    assert all(_starts(ledger, f"work-{i}") == 1 for i in range(rounds))


async def test_a_step_blocking_the_event_loop_is_reported_and_bounded(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    async with Client.connect(backend_url) as client:
        run = await client.start("robust-block-loop", {"ledger": str(ledger), "seconds": 3 * LEASE})
        finished = await _finished_with_a_worker_alive(
            client, run.id, procs, backend_url, workers=2
        )

    assert finished.status is RunStatus.FAILED, procs.tails()
    assert finished.error is not None
    assert finished.error["type"] == "CrashLoop"
    assert "while step 'block' was running" in finished.error["message"]
    assert _starts(ledger, "block") == LIMIT
    reports = [
        line for proc in procs.procs for line in proc.log().split(" ERROR ")[1:]
        if line.startswith("stepwise.worker.watchdog: event loop blocked for")
    ]  # fmt: skip
    assert reports, procs.tails()
    assert all("in blocking" in report and "flows.py" in report for report in reports), reports
