"""A deadline: a payment must be authorized within seconds, or not at all.

    stepwise worker --app examples/deadlines.py &
    stepwise start authorize-payment --input '{"order": "A-1", "amount": 42}' \
        --deadline 20 --wait

``--deadline`` (``deadline=`` in ``client.start``) bounds the whole run: a run not finished by
then fails with ``DeadlineExceeded``. The primary provider is down; its policy would retry in
30 s, after the deadline, so stepwise does not wait for that retry: the step fails at once
with ``StepFailed``, and the workflow falls back to the backup provider while there is still
time. Without a deadline, the step would be retried 30, 60, 120 and 240 s later first.
"""

from __future__ import annotations

from typing import Any

from stepwise import RetryPolicy, StepFailed, workflow

SLOW_RETRIES = RetryPolicy(max_attempts=5, initial_interval=30, backoff_coefficient=2)


def authorize_with_primary(order: str, amount: float) -> dict[str, Any]:
    raise ConnectionError("primary payment provider unreachable")


def authorize_with_backup(order: str, amount: float) -> dict[str, Any]:
    return {"order": order, "amount": amount, "provider": "backup", "authorized": True}


@workflow("authorize-payment")
async def authorize_payment(ctx: Any) -> dict[str, Any]:
    order, amount = ctx.input["order"], ctx.input["amount"]
    authorization: dict[str, Any]
    try:
        authorization = await ctx.step.run(
            "primary", authorize_with_primary, order, amount, retry=SLOW_RETRIES
        )
    except StepFailed:
        authorization = await ctx.step.run("backup", authorize_with_backup, order, amount)
    return authorization
