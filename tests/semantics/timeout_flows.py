"""Workflows for ``test_timeouts_worker``, served by real worker processes (``--app`` this file)."""

from __future__ import annotations

import threading
from typing import Any

from stepwise import RetryPolicy, StepFailed, WorkflowContext, workflow

TWICE = RetryPolicy(max_attempts=2, initial_interval=0.01)


def hang() -> None:
    """A blocking call with no timeout of its own (a driver that never answers)."""
    threading.Event().wait()


def echo(value: Any) -> Any:
    return value


@workflow("timeout-hung-sync-step")
async def hung(ctx: WorkflowContext[dict[str, float]]) -> dict[str, Any]:
    """Its sync step hangs forever; each of its two attempts times out after
    ``input["timeout"]`` seconds."""
    try:
        await ctx.step.run("hang", hang, retry=TWICE, timeout=ctx.input["timeout"])
    except StepFailed as exc:
        return {"error_type": exc.error_type, "attempts": exc.attempts}
    return {}


@workflow("timeout-echo")
async def echoes(ctx: WorkflowContext[Any]) -> Any:
    return await ctx.step.run("echo", echo, ctx.input)
