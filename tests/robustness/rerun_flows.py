"""Workflows the retry and fork tests run in real worker processes (``--app`` this file).

``rerun-order`` prepares an order, charges it through a "downstream" and notifies: the
downstream is down while the file ``input["down"]`` exists, so a test fails the run, brings the
downstream back (deletes the file), retries or forks, and reads the ledger (``flows.record``):
one line per step execution, written outside the workers, counts what ran in total.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepwise import RetryPolicy, WorkflowContext, workflow
from tests.robustness.flows import gated_step, record

CHARGE_RETRY = RetryPolicy(max_attempts=2, initial_interval=0.05)


def ledgered(ledger: str, run_id: str, key: str, down: str | None = None) -> Any:
    """A step that logs its start; it fails with ConnectionError while ``down`` exists."""

    def step() -> str:
        record(ledger, "start", run_id, key, key)
        if down is not None and Path(down).exists():
            raise ConnectionError(f"downstream of {key} is down")
        return f"{key} done"

    return step


@workflow("rerun-order")
async def order(ctx: WorkflowContext[dict[str, str]]) -> list[str]:
    ledger, run_id, down = ctx.input["ledger"], ctx.run_id, ctx.input["down"]
    return [
        await ctx.step.run("prepare", ledgered(ledger, run_id, "prepare")),
        await ctx.step.run("charge", ledgered(ledger, run_id, "charge", down), retry=CHARGE_RETRY),
        await ctx.step.run("notify", ledgered(ledger, run_id, "notify")),
    ]


@workflow("rerun-gated")
async def gated(ctx: WorkflowContext[dict[str, str]]) -> list[str]:
    """``first`` returns at once; ``second`` waits for the gate file."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    first = await ctx.step.run("first", gated_step(ledger, run_id, "first"))
    second = await ctx.step.run("second", gated_step(ledger, run_id, "second", ctx.input["gate"]))
    return [first["execution"], second["execution"]]


@workflow("rerun-whole", retry=RetryPolicy(max_attempts=2, initial_interval=0.05))
async def whole(ctx: WorkflowContext[dict[str, str]]) -> str:
    """Fails as a whole (not in a step) while the downstream is down: its retry policy, not a
    step's, tries it again."""
    ledgered(ctx.input["ledger"], ctx.run_id, "body", ctx.input["down"])()
    return "done"
