"""Workflows for ``test_crash``, served by real worker processes (``--app`` this file)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stepwise import WorkflowContext, workflow


def quick(name: str) -> str:
    return name


async def gated(gate: str) -> str:
    """Waits until the file ``gate`` exists: the test kills the first worker while it waits,
    and opens the gate for the second."""
    while not Path(gate).exists():
        await asyncio.sleep(0.02)
    return "c"


@workflow("traced-crash")
async def traced_crash(ctx: WorkflowContext[dict[str, str]]) -> list[Any]:
    return list(
        await asyncio.gather(
            ctx.step.run("a", quick, "a"),
            ctx.step.run("b", quick, "b"),
            ctx.step.run("c", gated, ctx.input["gate"]),
        )
    )
