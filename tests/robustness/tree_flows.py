"""The workflow of the tree chaos test, run in real worker processes (``--app`` this file).

A parent runs a step (of the longest duration in ``seconds``), waits for its ``go`` signal,
which says how many children to start, runs them all at once (each a ``robust-mixed`` run:
the chaos test's workflow), then runs a last step. Its steps and its children's record every
execution in the ledger (see ``flows``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import WorkflowContext, workflow
from tests.robustness.flows import mixed, timed_step


@workflow("robust-tree")
async def tree(ctx: WorkflowContext[dict[str, Any]]) -> dict[str, Any]:
    ledger, run_id, (low, high) = ctx.input["ledger"], ctx.run_id, ctx.input["seconds"]
    first = await ctx.step.run("step-0", timed_step(ledger, run_id, "step-0", high))
    go = await ctx.step.wait_for_signal("go")
    plan = {"ledger": ledger, "steps": ctx.input["child_steps"], "seconds": [low, high]}
    children = await asyncio.gather(
        *(
            ctx.step.run_workflow(mixed, {**plan, "seed": i}, name=f"child-{i}")
            for i in range(go["children"])
        )
    )
    last = await ctx.step.run("step-1", timed_step(ledger, run_id, "step-1", high))
    return {"first": first["execution"], "go": go, "children": children, "last": last["execution"]}
