"""The workflows of the scale suite (``bench.scale``).

``scale-long`` runs ``steps`` sequential no-op steps, with a durable ``sleep(0)`` after every
``sleep_every`` of them when that is set: each sleep ends the execution, so the run is claimed
again and replayed from the top, and the replays grow with the run. Each step notes when it
ran (``MARKS``), so the cost of step k is the time since step k-1 ran, replays included.

``scale-payload`` runs 4 sequential steps whose results are ``size`` bytes of incompressible
text (Postgres compresses what it stores, so repeated bytes would measure nothing).
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from stepwise import WorkflowContext, workflow

LONG = "scale-long"
PAYLOAD = "scale-payload"
PAYLOAD_STEPS = 4

MARKS: dict[int, float] = {}
"""Step number → ``perf_counter()`` when it ran (its first and only execution)."""


async def mark(i: int) -> None:
    MARKS[i] = time.perf_counter()


@workflow(LONG)
async def long(ctx: WorkflowContext[Any]) -> dict[str, int]:
    steps, every = ctx.input["steps"], ctx.input.get("sleep_every") or 0
    for i in range(1, steps + 1):
        await ctx.step.run(f"step-{i}", mark, i)
        if every and i % every == 0 and i < steps:
            await ctx.step.sleep(f"pause-{i}", 0)
    return {"steps": steps}


def blob(size: int) -> str:
    """``size`` characters of base64 of random bytes: JSON-safe and incompressible."""
    return base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode()[:size]


async def produce(size: int) -> str:
    return blob(size)


@workflow(PAYLOAD)
async def payload(ctx: WorkflowContext[Any]) -> dict[str, bool]:
    for i in range(1, PAYLOAD_STEPS + 1):
        await ctx.step.run(f"produce-{i}", produce, ctx.input["size"])
    return {"completed": True}
