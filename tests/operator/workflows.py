"""Workflows the operator tests run, loaded by real worker processes with ``--app``.

Step durations come from the input, so a test decides how long a run stays in flight.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stepwise import NO_RETRY, WorkflowContext, workflow


async def _pause(seconds: float, value: Any) -> Any:
    await asyncio.sleep(seconds)
    return value


@workflow("fan-out")
async def fan_out(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    """Three parallel steps taking ``delays[i]`` seconds, then one that adds them up."""
    delays = ctx.input.get("delays", [0, 0, 0])
    parts = await asyncio.gather(
        *(
            ctx.step.run(f"part-{i}", lambda i=i, d=d: _pause(d, i + 1))
            for i, d in enumerate(delays)
        )
    )
    total = await ctx.step.run("sum", lambda: sum(parts))
    return {"parts": parts, "total": total, "echo": ctx.input.get("echo")}


@workflow("chain")
async def chain(ctx: WorkflowContext[Any]) -> int:
    """``steps`` steps one after the other, each taking ``delay`` seconds."""
    count = 0
    for i in range(ctx.input["steps"]):
        count = await ctx.step.run(f"link-{i}", lambda c=count: _pause(ctx.input["delay"], c + 1))
    return count


@workflow("fails")
async def fails(ctx: WorkflowContext[Any]) -> None:
    await ctx.step.run("ok", lambda: "fine")

    def boom() -> None:
        raise ValueError(ctx.input.get("why", "boom"))

    await ctx.step.run("explode", boom, retry=NO_RETRY)


@workflow("downstream")
async def downstream(ctx: WorkflowContext[Any]) -> str:
    """``prepare``, then ``call``, which fails while the file ``input["down"]`` exists."""
    prepared = await ctx.step.run("prepare", lambda: "prepared")

    def call() -> str:
        if Path(ctx.input["down"]).exists():
            raise ConnectionError("the downstream is down")
        return "called"

    return f"{prepared}, {await ctx.step.run('call', call, retry=NO_RETRY)}"


@workflow("family-child")
async def family_child(ctx: WorkflowContext[Any]) -> str:
    """Sleeps ``input["sleep"]`` seconds (durably), then returns ``input["echo"]``."""
    await ctx.step.sleep("nap", ctx.input.get("sleep", 0))
    return str(ctx.input["echo"])


@workflow("family")
async def family(ctx: WorkflowContext[Any]) -> list[str]:
    """One ``family-child`` per entry of ``input["children"]``; their outputs in order."""
    children = (
        ctx.step.run_workflow(family_child, child, name=f"child-{n}")
        for n, child in enumerate(ctx.input["children"])
    )
    return list(await asyncio.gather(*children))


@workflow("big-output")
async def big_output(ctx: WorkflowContext[Any]) -> str:
    return await ctx.step.run("make", lambda: "x" * ctx.input["size"])


@workflow("approval")
async def approval(ctx: WorkflowContext[Any]) -> Any:
    """Waits (parked, holding no worker slot) for the signal ``approve`` and returns it."""
    return {"approved": await ctx.step.wait_for_signal("approve")}
