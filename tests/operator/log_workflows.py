"""A workflow that logs while it waits for a gate file, for the WorkflowRun log tail test
(``--app`` this file)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from stepwise import WorkflowContext, workflow

GATE_POLL_SECONDS = 0.01


@workflow("log-tail")
async def log_tail(ctx: WorkflowContext[dict[str, Any]]) -> str:
    ctx.log.info("starting for %s", ctx.input["who"])

    def wait() -> str:
        logging.getLogger("shop").warning("waiting for the gate\nsecond line not shown")
        while not Path(ctx.input["gate"]).exists():
            time.sleep(GATE_POLL_SECONDS)
        return "open"

    await ctx.step.run("wait", wait)
    for n in range(12):
        ctx.log.info("line %d", n)
    return "done"
