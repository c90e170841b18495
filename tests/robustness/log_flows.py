"""A workflow whose steps log, for the test that SIGKILLs its worker (``--app`` this file).

Each line names the process that logged it, so the test tells the two workers' lines apart.
Step ``c`` waits for a gate file, so the test decides when the first worker dies: with ``a``
and ``b`` stored and ``c`` running.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from stepwise import WorkflowContext, workflow

GATE_POLL_SECONDS = 0.01
plain = logging.getLogger("tests.log_flows")


def logging_step(ctx: WorkflowContext[dict[str, str]], key: str, gate: str | None = None) -> Any:
    def step() -> str:
        ctx.log.info("%s ctx.log in %d", key, os.getpid())
        plain.info("%s plain logging in %d", key, os.getpid())
        while gate is not None and not Path(gate).exists():
            asyncio.run(asyncio.sleep(GATE_POLL_SECONDS))
        return key

    return step


@workflow("logged-crash")
async def logged_crash(ctx: WorkflowContext[dict[str, str]]) -> list[str]:
    ctx.log.info("body begins")
    results = await asyncio.gather(
        ctx.step.run("a", logging_step(ctx, "a")),
        ctx.step.run("b", logging_step(ctx, "b")),
        ctx.step.run("c", logging_step(ctx, "c", ctx.input["gate"])),
    )
    ctx.log.info("body ends")
    return list(results)
