"""Chaos with workflows that talk: parents, children and signals in flight while worker
processes are SIGKILLed and restarted; nothing lost, nothing run twice.

Three worker processes serve 64 parents started all through an 8-second window, two per
tick (so a step is usually in flight when a kill looks for one; a tick that finds every run
done or parked kills no one). Each parent runs a step, waits
for its ``go`` signal (half are signaled right after the start, so the signal is buffered
before the wait; the others a tick later, so most are parked on it), starts the children the
signal asks for in one ``gather``, waits for them, and runs a last step. Every tick a worker
caught running a step is SIGKILLed and a fresh one started (as in ``test_chaos``). Then every
parent and child must have succeeded; each parent must have exactly its children (one per
child step: none started twice), each signal delivered once to its wait; and the ledger,
written outside the database by every step execution, must show no
completed step run again, checked against the stored steps.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness.workers import Procs
from stepwise import Client, Run
from tests.robustness.chaos import WorkerPool
from tests.robustness.checks import (
    assert_all_succeeded,
    assert_completed_steps_never_rerun,
    assert_no_errors_logged,
    assert_outputs_are_what_was_stored,
)

FLOWS = Path(__file__).with_name("tree_flows.py")
PARENTS = 64
CHILDREN = 3
CHILD_STEPS = 4
STEP_SECONDS = (0.05, 0.2)
WORKERS = 3
CHAOS_SECONDS = 8.0
KILL_EVERY = 0.25
LEASE = 2.0
RECOVERIES = ("--max-recovery-attempts", "100")
"""A kill every tick may catch one run on several workers in a row before any of its steps
completes: that is the chaos, not a run that kills its worker (the bound's purpose)."""
PARENT_KEYS = ["step-0", "step-1"]
UNTRACKED = ["go", *(f"child-{i}" for i in range(CHILDREN))]


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_sigkill_workers_while_parents_children_and_signals_are_in_flight(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ticks = round(CHAOS_SECONDS / KILL_EVERY)
    go = {"children": CHILDREN}
    async with Client.connect(backend_url) as client:
        parents: list[Run] = []
        pool = WorkerPool(
            procs, FLOWS, backend_url, client, ledger, lease=LEASE, concurrency=20, args=RECOVERIES
        )
        pool.start(WORKERS)
        late: list[Run] = []
        for tick in range(ticks):
            for run in late:  # started a tick ago: most are parked on their wait by now
                await client.signal(run.id, "go", go)
            late = []
            for i in range(tick * PARENTS // ticks, (tick + 1) * PARENTS // ticks):
                plan = {"ledger": str(ledger), "seconds": STEP_SECONDS, "child_steps": CHILD_STEPS}
                run = await client.start("robust-tree", plan)
                parents.append(run)
                if i % 2:
                    late.append(run)
                else:  # kept until the parent waits for it
                    await client.signal(run.id, "go", go)
            await asyncio.sleep(KILL_EVERY)  # the chaos cadence, not a wait for a condition
            await pool.kill_one_holding_a_run()
        for run in late:
            await client.signal(run.id, "go", go)

        finished = [await client.wait_finished(run.id, timeout=300) for run in parents]
        assert_all_succeeded(finished, procs)
        children: list[Run] = []
        for parent in finished:
            output: dict[str, Any] = parent.output or {}
            mine = sorted(await client.list(parent_id=parent.id), key=lambda c: c.parent_step or "")
            assert [c.parent_step for c in mine] == UNTRACKED[1:], parent.id
            assert output["children"] == [c.output for c in mine], parent.id
            assert output["go"] == go
            signals = await client.signals(parent.id)
            assert [(s.name, s.delivered_to) for s in signals] == [("go", "go")], parent.id
            children += mine
        assert_all_succeeded(children, procs)
        assert await client.count() == PARENTS * (1 + CHILDREN)
        assert_no_errors_logged(procs)
        parent_replays = await assert_completed_steps_never_rerun(
            client, [p.id for p in parents], ledger, PARENT_KEYS, UNTRACKED
        )
        child_replays = await assert_completed_steps_never_rerun(
            client, [c.id for c in children], ledger, [f"step-{i}" for i in range(CHILD_STEPS)]
        )
        await assert_outputs_are_what_was_stored(client, children)
        for parent in finished:
            output = parent.output or {}
            stored = {s.key: s.output or {} for s in await client.steps(parent.id)}
            assert output["first"] == stored["step-0"]["execution"]
            assert output["last"] == stored["step-1"]["execution"]

    everyone = [*finished, *children]
    recoveries = sum(run.recoveries for run in everyone)
    summary = (
        f"tree chaos on {backend_url.split(':')[0]}: {pool.spawned} worker processes, "
        f"{len(pool.killed)} SIGKILLed; {PARENTS} parents, {len(children)} children, "
        f"{PARENTS} signals; {sum(r.claims for r in everyone)} claims, {recoveries} after a "
        f"worker died; step executions: parents {parent_replays.executions} for "
        f"{parent_replays.steps} steps, children {child_replays.executions} for "
        f"{child_replays.steps} (re-runs only of steps in flight at a kill)"
    )
    print(summary)
    # Every kill interrupted a run in flight, which another worker claimed again.
    assert recoveries > 0, summary
