"""The workflow of the signal crash test, run in real worker processes (``--app`` this file).

Its body writes to the ledger (see ``flows``) what each execution received, then waits for a
gate file before its next step: the test SIGKILLs the worker right there, between receiving a
signal and the next step.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from stepwise import WorkflowContext, workflow
from tests.robustness.flows import GATE_POLL_SECONDS, gated_step, record


@workflow("robust-signal")
async def signaled(ctx: WorkflowContext[dict[str, str]]) -> dict[str, Any]:
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    first = await ctx.step.wait_for_signal("go")
    record(ledger, "received", run_id, f"go={first['n']}", f"{os.getpid()}-body")
    while not Path(ctx.input["gate"]).exists():  # not a step: every execution passes here
        await asyncio.sleep(GATE_POLL_SECONDS)
    after = await ctx.step.run("after", gated_step(ledger, run_id, "after"))
    second = await ctx.step.wait_for_signal("go")
    return {"first": first, "second": second, "after": after["execution"]}
