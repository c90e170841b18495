"""Retry policies: a flaky call is retried with exponential backoff; a hopeless one is not.

stepwise run examples/retries.py charge-with-retries --input '{"order": "A-1", "failures": 2}'

The charge fails ``failures`` times (a timeout from the payment provider), then succeeds: with
``RetryPolicy(max_attempts=5, initial_interval=0.2)`` the attempts wait 0.2 s, 0.4 s, 0.8 s…
between them. A card declined is final: retrying cannot help, so that step runs with
``NO_RETRY`` and the workflow catches its ``StepFailed``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from stepwise import NO_RETRY, RetryPolicy, StepFailed, workflow

FLAKY = RetryPolicy(max_attempts=5, initial_interval=0.2, backoff_coefficient=2, max_interval=5)
attempts: Counter[str] = Counter()  # per worker process: enough for a demonstration


def charge(order: str, failures: int) -> dict[str, Any]:
    attempts[order] += 1
    if attempts[order] <= failures:
        raise TimeoutError(f"payment provider timed out (attempt {attempts[order]})")
    return {"order": order, "charged": True, "attempts": attempts[order]}


def charge_declined_card(order: str) -> dict[str, Any]:
    raise ValueError(f"card declined for {order}")


@workflow("charge-with-retries")
async def charge_with_retries(ctx: Any) -> dict[str, Any]:
    order, failures = ctx.input["order"], int(ctx.input.get("failures", 2))
    paid = await ctx.step.run("charge", charge, order, failures, retry=FLAKY)
    try:
        await ctx.step.run("charge-declined", charge_declined_card, order, retry=NO_RETRY)
        declined = "charged"
    except StepFailed as exc:
        declined = f"not retried: {exc.__cause__ or exc}"
    return {"charge": paid, "declined": declined}
