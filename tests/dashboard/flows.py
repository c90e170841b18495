"""Workflows the dashboard tests run: three steps in ``asyncio.gather`` that wait for one
another (so their bars overlap on the timeline, whatever the machine's load), a step that
fails, and a run that sleeps until it is canceled."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from stepwise import NonRetryableError, WorkflowContext, workflow

PARALLEL = ("fetch-user", "fetch-subscription", "fetch-settings")
WORK_SECONDS = {"fetch-user": 0.15, "fetch-subscription": 0.25, "fetch-settings": 0.1}
"""How long each parallel step works once all three run (for bars a screenshot can show)."""
_ARRIVED: dict[str, set[str]] = {}


async def meet(tag: str, name: str) -> str:
    """Return once every step of ``PARALLEL`` with this ``tag`` is running."""
    arrived = _ARRIVED.setdefault(tag, set())
    arrived.add(name)
    while len(arrived) < len(PARALLEL):
        await asyncio.sleep(0.01)
    await asyncio.sleep(WORK_SECONDS[name])
    return name


@workflow("dash-parallel")
async def parallel(ctx: WorkflowContext) -> Any:
    tag = ctx.run_id
    found = await asyncio.gather(*(ctx.step.run(name, meet, tag, name) for name in PARALLEL))
    total = await ctx.step.run("summarize", lambda: len(found))
    return {"fetched": found, "total": total}


def charge(cents: int) -> None:
    logging.getLogger("billing").warning("the bank declined %s cents", cents)
    raise NonRetryableError(f"card declined for {cents} cents")


@workflow("dash-fails")
async def fails(ctx: WorkflowContext) -> None:
    ctx.log.info("charging %s cents", ctx.input["cents"])
    await ctx.step.run("charge", charge, ctx.input["cents"])


@workflow("dash-sleeps")
async def sleeps(ctx: WorkflowContext) -> None:
    await ctx.step.sleep("nap", timedelta(hours=1))


@workflow("dash-parent")
async def parent(ctx: WorkflowContext) -> Any:
    approval = await ctx.step.wait_for_signal("approve")
    fetched = await ctx.step.run_workflow("dash-parallel", {"user": approval["user"]})
    return {"approved_by": approval["by"], "child": fetched}
