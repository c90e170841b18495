"""The workflows of the child crash test, run in real worker processes (``--app`` this file).

The parent runs a step, waits for its child, then runs another. The child runs a step and then
blocks in its body (not a step) until a gate file exists: the test SIGKILLs the worker while
the parent is parked on the child and no step is in flight.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from stepwise import WorkflowContext, workflow
from tests.robustness.flows import GATE_POLL_SECONDS, gated_step, record


@workflow("robust-child")
async def child(ctx: WorkflowContext[dict[str, str]]) -> dict[str, Any]:
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    work = await ctx.step.run("child-work", gated_step(ledger, run_id, "child-work"))
    record(ledger, "blocked", run_id, "child-body", f"{os.getpid()}-body")
    while not Path(ctx.input["gate"]).exists():  # not a step: every execution passes here
        await asyncio.sleep(GATE_POLL_SECONDS)
    return {"work": work["execution"]}


@workflow("robust-parent")
async def parent(ctx: WorkflowContext[dict[str, str]]) -> dict[str, Any]:
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    before = await ctx.step.run("before", gated_step(ledger, run_id, "before"))
    output = await ctx.step.run_workflow(child, dict(ctx.input), name="child")
    after = await ctx.step.run("after", gated_step(ledger, run_id, "after"))
    return {"before": before["execution"], "child": output, "after": after["execution"]}
