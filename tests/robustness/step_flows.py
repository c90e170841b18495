"""Workflows whose user code misbehaves the way real code does, for real worker processes.

Pass this file (alone) as ``--app``: it imports ``flows`` for its ledger and so also serves
``robust-echo``, which shows a worker still serves after a bad run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from stepwise import RetryPolicy, WorkflowContext, workflow
from tests.robustness.flows import gated_step, record

RAISED: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": lambda: KeyboardInterrupt("raised by the step"),
    "GeneratorExit": lambda: GeneratorExit("raised by the step"),
    "CancelledError": lambda: asyncio.CancelledError("raised by the step"),
}
"""``BaseException``s user code raises on its own (none of them is caused by the engine)."""

TWICE = RetryPolicy(max_attempts=2, initial_interval=0.01)


@workflow("robust-raises")
async def raises(ctx: WorkflowContext[dict[str, str]]) -> None:
    """Raises ``RAISED[input["raise"]]`` from a ``sync`` or ``async`` step (tried twice), or from
    the workflow ``body`` itself; each try is a ``start`` in the ledger."""
    ledger, run_id, where = ctx.input["ledger"], ctx.run_id, ctx.input["where"]
    make = RAISED[ctx.input["raise"]]

    def sync_step() -> None:
        record(ledger, "start", run_id, where, f"{os.getpid()}-sync")
        raise make()

    async def async_step() -> None:
        record(ledger, "start", run_id, where, f"{os.getpid()}-async")
        raise make()

    if where == "body":
        record(ledger, "start", run_id, where, f"{os.getpid()}-body")
        raise make()
    step: Any = sync_step if where == "sync" else async_step
    await ctx.step.run("explode", step, retry=TWICE)


DEPLOY_VARIABLE = "FLOWS_DEPLOY"
"""The "deployed version" of ``robust-deployed``: each worker process gets its own."""


@workflow("robust-deployed")
async def deployed(ctx: WorkflowContext[dict[str, str]]) -> list[str]:
    """Its first step is named after the deploy (``charge-v1``, ``charge-v2``…), like code whose
    step was renamed between two releases; the second step waits for its gate."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    first = await ctx.step.run(
        f"charge-{os.environ.get(DEPLOY_VARIABLE, 'v1')}",
        gated_step(ledger, run_id, "charge"),
    )
    second = await ctx.step.run("notify", gated_step(ledger, run_id, "notify", ctx.input["gate"]))
    return [first["execution"], second["execution"]]
