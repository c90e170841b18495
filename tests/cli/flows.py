"""Workflows the CLI tests run: steps that succeed, fail and retry, a durable sleep, and a
workflow that fails its first attempt and is retried as a whole."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from stepwise import RetryPolicy, WorkflowContext, workflow

QUICK_RETRY = RetryPolicy(max_attempts=2, initial_interval=0.05)


def charge(cents: int) -> None:
    raise ValueError(f"card declined for {cents} cents")


@workflow("cli-story")
async def story(ctx: WorkflowContext) -> Any:
    """A long output, a step failed on both attempts (caught), a durable sleep."""
    long = await ctx.step.run("long-output", lambda: "x" * 500)
    with contextlib.suppress(Exception):  # the workflow goes on without the charge
        await ctx.step.run("charge", charge, 250, retry=QUICK_RETRY)
    await ctx.step.sleep("nap", timedelta(seconds=0.3))
    return {"length": len(long)}


@workflow("cli-flaky", retry=RetryPolicy(max_attempts=2, initial_interval=1.0))
async def flaky(ctx: WorkflowContext) -> str:
    """Fails its first attempt as a whole (the marker file is not there yet), then succeeds."""
    await ctx.step.run("prepare", lambda: 1)
    marker = Path(ctx.input["marker"])
    if not marker.exists():
        marker.touch()
        raise RuntimeError("downstream is down")
    return "done"
