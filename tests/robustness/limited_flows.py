"""A workflow with a concurrency limit, for real worker processes (``--app`` this file).

Its steps write to the ledger of ``flows`` (start and done of every execution), so a test can
tell from outside the database how many runs had user code running at any moment.
"""

from __future__ import annotations

from typing import Any

from stepwise import WorkflowContext, workflow
from tests.robustness.flows import timed_step

LIMIT = 2


@workflow("robust-limited", concurrency=LIMIT)
async def limited(ctx: WorkflowContext[dict[str, Any]]) -> list[str]:
    """``steps`` steps of ``seconds`` each, one after the other."""
    ledger, run_id, seconds = ctx.input["ledger"], ctx.run_id, ctx.input["seconds"]
    outputs = [
        await ctx.step.run(f"step-{i}", timed_step(ledger, run_id, f"step-{i}", seconds))
        for i in range(ctx.input["steps"])
    ]
    return [output["execution"] for output in outputs]
