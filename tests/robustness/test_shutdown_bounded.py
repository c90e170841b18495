"""Shutdown is bounded: after its grace period a worker exits even while a sync step still runs
in its thread, and nothing that thread produces afterwards is stored.

The process test: SIGTERM while a sync step waits for a gate that never opens (a step stuck for
good) → the process exits once the grace has passed; the run was released, so another worker
claims it at once (the lease is a minute) and finishes it there. The in-process test shows
the fencing: the abandoned thread returns after the worker stopped, and its result is never
stored; the next worker runs the step again and its result is the one kept.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from harness.workers import Procs, async_wait_until
from stepwise import Client, Registry, RunStatus, StepStatus, workflow
from tests.conftest import Engine
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("flows.py")
LEASE = 60.0
GRACE = 1.0


async def test_sigterm_exits_after_the_grace_while_a_sync_step_still_runs(
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
        run = await client.start("robust-gated", {"ledger": str(ledger), "gate": str(gate)})

        async def first_step_runs() -> bool:
            return any(e.key == "first" for e in read_ledger(ledger))

        await async_wait_until(first_step_runs, 30, lambda: f"step 'first' runs\n{procs.tails()}")
        stopping.terminate()
        # Before the fix the process waited for the step's thread, that is forever.
        code = await asyncio.to_thread(stopping.wait, 60)
        assert code == 0, stopping.tail()
        released = await client.get(run.id)
        assert released.status is RunStatus.PENDING, stopping.tail()

        gate.touch()
        taking_over = procs.worker(FLOWS, backend_url, lease=LEASE, name="taking-over")
        finished = await client.wait_finished(run.id, timeout=30)

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    assert finished.claims == 2
    starts = [e.pid for e in read_ledger(ledger) if e.key == "first" and e.event == "start"]
    assert starts == [stopping.pid, taking_over.pid]
    assert int(finished.output["first"].split("-")[0]) == taking_over.pid
    assert "abandoned after the 1s shutdown grace" in stopping.log()
    assert_no_errors_logged(procs)


async def test_a_step_thread_that_returns_after_the_shutdown_stores_nothing(
    backend_url: str,
) -> None:
    async with Client.connect(backend_url) as client:
        await _abandoned_thread_stores_nothing(Engine(client))


async def _abandoned_thread_stores_nothing(engine: Engine) -> None:
    release = threading.Event()
    returned = threading.Event()
    calls = 0

    def stuck() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            release.wait()
            returned.set()
            return "from the abandoned thread"
        return "from the next worker"

    @workflow("stuck-at-shutdown", registry=Registry())
    async def stuck_wf(ctx: Any) -> str:
        result: str = await ctx.step.run("stuck", stuck)
        return result

    engine.registry.add(stuck_wf)
    run = await engine.client.start(stuck_wf, None)
    stop = asyncio.Event()
    first = engine.worker(shutdown_grace=0.1)
    serving = asyncio.create_task(first.run(stop))

    async def step_runs() -> bool:
        return calls == 1

    await async_wait_until(step_runs, 30, "the step runs")
    stop.set()
    await asyncio.wait_for(serving, 30)  # returns although the step's thread still runs
    assert (await engine.client.get(run.id)).status is RunStatus.PENDING

    release.set()
    await asyncio.to_thread(returned.wait, 30)
    (step,) = await engine.client.steps(run.id)
    assert step.status is not StepStatus.COMPLETED

    stop = asyncio.Event()
    second = asyncio.create_task(engine.worker().run(stop))
    try:
        finished = await engine.client.wait_finished(run.id, timeout=30)
    finally:
        stop.set()
        await second
    assert (finished.status, finished.output) == (RunStatus.SUCCEEDED, "from the next worker")
