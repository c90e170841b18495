"""Workflows whose runs log, for the tests of ``runs logs``, ``runs show`` and the worker's
JSON log (``--app`` this file)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from stepwise import WorkflowContext, workflow

GATE_POLL_SECONDS = 0.01


@workflow("cli-logged")
async def logged(ctx: WorkflowContext[dict[str, Any]]) -> str:
    """Logs in the body and in a sync step; the step waits for the input's gate file, if any."""
    ctx.log.info("hello from the body")

    def greet() -> str:
        logging.getLogger("shop.greeter").warning("greeting %s", ctx.input.get("who", "you"))
        gate = ctx.input.get("gate")
        while gate is not None and not Path(gate).exists():
            time.sleep(GATE_POLL_SECONDS)
        ctx.log.info("greeted")
        return "hi"

    said: str = await ctx.step.run("greet", greet)
    ctx.log.info("bye")
    return said
