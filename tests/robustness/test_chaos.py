"""Chaos: worker processes SIGKILLed and restarted under load; no run lost, none stuck, no
completed step run twice.

Three worker processes serve 200 runs of 10 steps each (random durations of 5-50 ms; half
the steps sequential, half gathered), started all through a 10-second window. In that window,
every ~200 ms a worker is SIGKILLed while it runs a step, and a fresh one started in its
place (unless the workers drained every run that had arrived: then that tick kills no one).
Then every run must finish successfully, and the ledger must show that no step whose
completion was stored ran again (see ``checks``). A short lease lets survivors take over the
dead workers' runs.

Why these choices: the kills must land on runs in flight, or the test proves nothing, so each
kill takes a worker caught running a step (``chaos.WorkerPool.kill_one_holding_a_run``): no
kill depends on timing, and each one interrupts at least one run, which another worker must
claim again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness.workers import Procs
from stepwise import Client, Run, RunStatus
from tests.robustness.chaos import WorkerPool
from tests.robustness.checks import (
    assert_all_succeeded,
    assert_completed_steps_never_rerun,
    assert_no_errors_logged,
    assert_outputs_are_what_was_stored,
)

FLOWS = Path(__file__).with_name("flows.py")
RUNS = 200
STEPS = 10
STEP_SECONDS = (0.005, 0.05)
WORKERS = 3
CHAOS_SECONDS = 10.0
KILL_EVERY = 0.2
LEASE = 2.0
# Fifty kills of workers holding up to 20 runs each: under load one run can be in flight at
# more than the default five crashes, which the crash-loop guard would rightly fail. That guard
# has its own test (test_crash_loop.py); here it must not decide the outcome.
RECOVERIES = ("--max-recovery-attempts", "1000")


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_sigkill_and_restart_workers_under_load(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ticks = round(CHAOS_SECONDS / KILL_EVERY)
    async with Client.connect(backend_url) as client:
        runs: list[Run] = []
        pool = WorkerPool(
            procs, FLOWS, backend_url, client, ledger, lease=LEASE, concurrency=20, args=RECOVERIES
        )
        pool.start(WORKERS)
        # Runs arrive all through the chaos, so the kills keep hitting runs in flight.
        for tick in range(ticks):
            for i in range(tick * RUNS // ticks, (tick + 1) * RUNS // ticks):
                plan = {"ledger": str(ledger), "steps": STEPS, "seed": i, "seconds": STEP_SECONDS}
                runs.append(await client.start("robust-mixed", plan))
            await asyncio.sleep(KILL_EVERY)  # the chaos cadence, not a wait for a condition
            await pool.kill_one_holding_a_run()
        finished_during_chaos = len(await client.list(status=RunStatus.SUCCEEDED, limit=RUNS))

        settle_started = time.monotonic()
        finished = [await client.wait_finished(run.id, timeout=300) for run in runs]
        settle_seconds = time.monotonic() - settle_started
        assert_all_succeeded(finished, procs)
        assert_no_errors_logged(procs)
        assert len(await client.list(limit=RUNS + 1)) == RUNS
        replays = await assert_completed_steps_never_rerun(
            client, [run.id for run in runs], ledger, [f"step-{i}" for i in range(STEPS)]
        )
        await assert_outputs_are_what_was_stored(client, finished)

    claims = sum(run.claims for run in finished)
    summary = (
        f"chaos on {backend_url.split(':')[0]}: {pool.spawned} worker processes, "
        f"{len(pool.killed)} SIGKILLed; {finished_during_chaos}/{RUNS} runs done during the "
        f"chaos, the rest {settle_seconds:.1f}s after it; {claims} claims for {RUNS} runs; "
        f"{replays.executions} step executions for {replays.steps} steps "
        f"({replays.reruns} re-run after a crash, none after completing)"
    )
    print(summary)
    # Every kill interrupted a run in flight, which another worker claimed again.
    assert claims > RUNS, summary
