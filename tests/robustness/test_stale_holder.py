"""A thawed stale holder starts no step of a run it lost.

Fencing refuses a stale holder's writes, not its side effects. A worker frozen past its lease
and then thawed must not start the next step of a run that another worker took over — here
the retry of a failed step, which fell due while it was frozen — in the moment before its
heartbeat tells it that the run moved on. It checks its own lease clock first (``core.lease``).

Each round, on real worker processes: the run's step fails on its first execution and is
retried ``RETRY_SECONDS`` later; in between, its worker is frozen (SIGSTOP) past its lease; the
other worker takes the run over and finishes it; then the frozen holder is thawed, its retry
overdue. The ledger of step starts must show no start by the holder after its thaw.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness.workers import Proc, Procs, async_wait_until
from stepwise import Client, RunStatus, Step, StepStatus
from tests.robustness.flows import Entry, read_ledger

FLOWS = Path(__file__).with_name("flows.py")
ROUNDS = 24
LEASE = 1.0
RETRY_SECONDS = 2.0
"""Longer than the lease: the retry falls due only after the other worker took over."""
TAKEOVER_TIMEOUT = 15 * LEASE
"""On SQLite, a holder frozen inside a write transaction keeps the lock: nobody can take over
until it thaws (the round then proves nothing and is not counted)."""


def _starts(ledger: Path, run_id: str) -> list[Entry]:
    return [e for e in read_ledger(ledger) if e.run_id == run_id and e.event == "start"]


async def _round(client: Client, workers: dict[int, Proc], ledger: Path) -> list[Entry] | None:
    """One round: the holder's step starts after its thaw, or None if the round did not set
    the trap (the holder retried before it was frozen, or nobody could take the run over)."""
    run = await client.start(
        "robust-retry-later", {"ledger": str(ledger), "retry_seconds": RETRY_SECONDS}
    )

    async def failed_once() -> Step | None:
        steps = await client.steps(run.id)
        return steps[0] if steps and steps[0].status is StepStatus.FAILED else None

    await async_wait_until(failed_once, 60, f"the first execution in run {run.id} failed")
    first = _starts(ledger, run.id)[0]
    holder = workers[first.pid]
    holder.pause()
    frozen_at = time.time()

    async def finished() -> bool:
        return (await client.get(run.id)).finished

    deadline = time.monotonic() + TAKEOVER_TIMEOUT
    while not await finished() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    taken_over = await finished()
    # The holder's retry is due (or it would be, were the holder not frozen): it would start
    # the moment the holder thaws. This waits out the fault, not a condition.
    await asyncio.sleep(max(0.0, first.at + RETRY_SECONDS - time.time()))
    thawed_at = time.time()
    holder.resume()
    done = await client.wait_finished(run.id, timeout=60)
    assert done.status is RunStatus.SUCCEEDED, done.error
    early = [e for e in _starts(ledger, run.id)[1:] if e.pid == holder.pid and e.at < frozen_at]
    if not taken_over or early or done.claims != 2:
        return None
    holder.wait_for_log(f"run {run.id}: lease lost", timeout=60)  # it had its chance
    return [e for e in _starts(ledger, run.id) if e.pid == holder.pid and e.at > thawed_at]


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_thawed_stale_holder_starts_no_step_of_the_run_it_lost(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    workers = {
        proc.pid: proc
        for proc in (
            procs.worker(
                FLOWS,
                backend_url,
                lease=LEASE,
                name=f"w{n}",
                args=["--poll-interval", "0.05"],
                ready=True,
            )
            for n in range(2)
        )
    }
    stale: list[Entry] = []
    conclusive = 0
    async with Client.connect(backend_url) as client:
        for _ in range(ROUNDS):
            starts = await _round(client, workers, ledger)
            if starts is not None:
                conclusive += 1
                stale += starts
    summary = f"{conclusive} of {ROUNDS} rounds set the trap; {len(stale)} stale step starts"
    print(summary)
    assert not stale, f"{summary}: " + ", ".join(f"{e.run_id} by {e.pid}" for e in stale[:10])
    assert conclusive >= ROUNDS // 2, f"too few rounds set the trap: {summary}\n{procs.tails()}"
