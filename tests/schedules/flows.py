"""A workflow declared with a schedule that ticks every second: the SIGKILL test's app."""

from __future__ import annotations

from typing import Any

from stepwise import WorkflowContext, workflow


@workflow("tick", schedule="* * * * * *", schedule_input={"source": "code"})
async def tick(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    assert ctx.scheduled_at is not None
    return {"input": ctx.input, "tick": ctx.scheduled_at.isoformat()}
