"""Fencing with real processes: a worker frozen past its lease loses the run for good.

Worker A starts a run and is frozen (SIGSTOP) inside its first step. Its lease runs out and
worker B claims the run, runs that step again (its result was never stored) and moves on to
the second step. Then A is thawed (SIGCONT): its step function returns, but A no longer holds
the run — the result it tries to store is rejected, A abandons the run, and B's results are
the ones kept. The run completes once, from B, and A goes on serving other runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.workers import Procs, async_wait_until, wait_until
from stepwise import Client, RunStatus, StepStatus
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import Entry, read_ledger

FLOWS = Path(__file__).with_name("flows.py")


async def test_worker_paused_past_its_lease_cannot_write_that_run(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, gate, gate2 = tmp_path / "ledger", tmp_path / "gate", tmp_path / "gate2"
    paused = procs.worker(FLOWS, backend_url, lease=2, name="paused")
    async with Client.connect(backend_url) as client:
        run = await client.start(
            "robust-gated", {"ledger": str(ledger), "gate": str(gate), "gate2": str(gate2)}
        )

        def seen(event: str, key: str, pid: int) -> list[Entry]:
            return [
                e
                for e in read_ledger(ledger)
                if (e.event, e.key, e.pid) == (event, key, pid) and e.run_id == run.id
            ]

        async def first_step_started_and_recorded() -> bool:
            steps = await client.steps(run.id)
            return bool(seen("start", "first", paused.pid)) and [s.key for s in steps] == ["first"]

        await async_wait_until(
            first_step_started_and_recorded,
            30,
            lambda: f"the paused worker runs the first step\n{procs.tails()}",
        )
        paused.pause()
        taking_over = procs.worker(FLOWS, backend_url, lease=30, name="taking-over")

        await asyncio.to_thread(
            wait_until,
            lambda: seen("start", "first", taking_over.pid),
            30,
            lambda: f"the other worker claims the run and reruns its first step\n{procs.tails()}",
        )
        gate.touch()  # both executions of the first step may return now
        await asyncio.to_thread(
            wait_until,
            lambda: seen("start", "second", taking_over.pid),
            30,
            lambda: f"the other worker reaches the second step\n{procs.tails()}",
        )

        paused.resume()
        await asyncio.to_thread(paused.wait_for_log, "lease lost", 30)
        await asyncio.to_thread(
            wait_until,
            lambda: seen("done", "first", paused.pid),
            30,
            lambda: f"the thawed worker's first step returns\n{procs.tails()}",
        )
        gate2.touch()
        finished = await client.wait_finished(run.id, timeout=30)
        steps = {s.key: s for s in await client.steps(run.id)}

        # The thawed worker still serves: alone, it executes the next run.
        taking_over.kill()
        echoed = await client.wait_finished(
            (await client.start("robust-echo", "after the fence")).id, timeout=30
        )

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    [kept] = seen("done", "first", taking_over.pid)
    assert steps["first"].status is StepStatus.COMPLETED
    assert steps["first"].output == {"execution": kept.execution}
    assert finished.output["first"] == kept.execution
    assert int(finished.output["second"].split("-")[0]) == taking_over.pid
    assert not seen("start", "second", paused.pid)
    assert finished.claims == 2
    assert echoed.status is RunStatus.SUCCEEDED
    assert echoed.output["pid"] == paused.pid
    assert_no_errors_logged(procs)
