"""Graceful shutdown of a real worker process: SIGTERM → stop claiming, let in-flight steps
finish, release the runs, exit 0 within the grace period.

The lease is 60 s, so a run the stopping worker merely abandoned would sit for a minute; the
runs must instead be taken by the other worker within seconds, and the steps in flight at the
SIGTERM must have been stored (they never run again).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("flows.py")
LEASE = 60.0
GRACE = 15.0
RUNS = 3


async def test_sigterm_releases_runs_to_another_worker_at_once(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    stopping = procs.worker(
        FLOWS,
        backend_url,
        lease=LEASE,
        name="stopping",
        args=["--shutdown-grace", f"{GRACE:g}"],
        ready=True,
    )
    async with Client.connect(backend_url) as client:
        runs = [
            await client.start("robust-gated", {"ledger": str(ledger), "gate": str(gate)})
            for _ in range(RUNS)
        ]

        async def all_first_steps_running() -> bool:
            starts = [e for e in read_ledger(ledger) if e.key == "first"]
            return len(starts) == RUNS

        await async_wait_until(
            all_first_steps_running,
            30,
            lambda: f"the first step of {RUNS} runs runs\n{procs.tails()}",
        )
        taking_over = procs.worker(
            FLOWS,
            backend_url,
            lease=LEASE,
            name="taking-over",
            args=["--poll-interval", "0.2"],
            ready=True,
        )

        stopping.terminate()
        signalled = time.monotonic()
        # The worker has stopped claiming and waits for its in-flight steps to settle.
        await asyncio.to_thread(stopping.wait_for_log, f"releasing {RUNS} run(s)", 10)
        late = await client.start("robust-echo", "after the SIGTERM")
        gate.touch()  # the in-flight steps may finish now, after the SIGTERM
        code = await asyncio.to_thread(stopping.wait, GRACE + 5)
        exited = time.monotonic() - signalled

        finished = [await client.wait_finished(run.id, timeout=30) for run in runs]
        taken_over = time.monotonic() - signalled
        echoed = await client.wait_finished(late.id, timeout=30)

    assert code == 0, stopping.tail()
    assert exited < GRACE
    assert taken_over < LEASE / 3, f"runs finished {taken_over:.1f}s after the SIGTERM"
    assert [run.status for run in finished] == [RunStatus.SUCCEEDED] * RUNS, procs.tails()
    assert [run.claims for run in finished] == [2] * RUNS
    entries = [e for e in read_ledger(ledger) if e.event == "start"]
    by_step = {key: sorted(e.pid for e in entries if e.key == key) for key in ("first", "second")}
    assert by_step == {"first": [stopping.pid] * RUNS, "second": [taking_over.pid] * RUNS}
    assert echoed.output["pid"] == taking_over.pid
    assert_no_errors_logged(procs)
