"""The stepwise workflows the benchmarks run: the same no-op shapes the peers run.

``bench-sequential`` awaits 4 no-op steps one after the other (the peers' published shape),
``bench-parallel`` runs them with ``asyncio.gather``, ``bench-latency`` awaits 3. The steps are
async no-ops so what is measured is the engine, not a thread pool hop. ``bench-sequential-logged``
is ``bench-sequential`` with one ``ctx.log`` line per step: what storing a run's logs costs.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from stepwise import WorkflowContext, workflow

SEQUENTIAL = "bench-sequential"
PARALLEL = "bench-parallel"
LATENCY = "bench-latency"
LOGGED = "bench-sequential-logged"
STEPS = {SEQUENTIAL: 4, PARALLEL: 4, LATENCY: 3, LOGGED: 4}


async def noop() -> None:
    return None


@workflow(SEQUENTIAL)
async def sequential(ctx: WorkflowContext[Any]) -> dict[str, bool]:
    for i in range(1, 5):
        await ctx.step.run(f"step-{i}", noop)
    return {"completed": True}


@workflow(PARALLEL)
async def parallel(ctx: WorkflowContext[Any]) -> dict[str, bool]:
    await asyncio.gather(*(ctx.step.run(f"step-{i}", noop) for i in range(1, 5)))
    return {"completed": True}


@workflow(LATENCY)
async def latency(ctx: WorkflowContext[Any]) -> dict[str, bool]:
    for i in range(1, 4):
        await ctx.step.run(f"step-{i}", noop)
    return {"completed": True}


async def log_one_line(ctx: WorkflowContext[Any], i: int) -> None:
    ctx.log.info("step %d of %s", i, ctx.run_id)


@workflow(LOGGED)
async def logged(ctx: WorkflowContext[Any]) -> dict[str, bool]:
    for i in range(1, 5):
        await ctx.step.run(f"step-{i}", functools.partial(log_one_line, ctx, i))
    return {"completed": True}
