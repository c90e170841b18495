"""The seed's crash scenario: three parallel steps, the worker dies after two completed.

Each step appends a line to the file named by ``STEPWISE_DEMO_LOG`` when its function runs,
so you can count executions from outside the worker:

    stepwise worker --app examples/crash_recovery.py --lease 2 &
    stepwise start crash-recovery
    # kill -9 the worker once step-a and step-b completed, start another one: step-c runs again,
    # step-a and step-b return their stored results.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from stepwise import workflow


def _record(step: str) -> None:
    path = os.environ.get("STEPWISE_DEMO_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{step}\n")


def make_step(name: str, seconds: float) -> Any:
    async def step() -> str:
        _record(name)
        await asyncio.sleep(seconds)
        return f"{name} done"

    return step


@workflow("crash-recovery")
async def crash_recovery(ctx: Any) -> list[str]:
    slow = float((ctx.input or {}).get("slowSeconds", 3))
    return list(
        await asyncio.gather(
            ctx.step.run("step-a", make_step("step-a", 0.1)),
            ctx.step.run("step-b", make_step("step-b", 0.2)),
            ctx.step.run("step-c", make_step("step-c", slow)),
        )
    )
