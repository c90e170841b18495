"""Deadlines and retries: a workflow or step retry never starts after the run's deadline (the
failure at hand is final), the deadline sweep never overwrites a real error, and backoff is
capped without overflow for any count."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from stepwise import RetryPolicy, RunStatus, workflow
from stepwise.backends.base import Backend, RetryRun
from stepwise.core import codec
from stepwise.worker.inline import run_to_completion
from tests.backends.test_conformance import claim_one, create, now, passed
from tests.conftest import Engine


class PaymentDeclined(Exception):
    pass


async def test_a_retry_that_would_start_after_the_deadline_fails_the_run_at_once(
    engine: Engine,
) -> None:
    hourly = RetryPolicy(max_attempts=5, initial_interval=3600, max_interval=3600)

    @workflow("charge-once-an-hour", registry=engine.registry, retry=hourly)
    async def charge(ctx: Any) -> None:
        raise PaymentDeclined("card declined")

    started = await engine.client.start(charge, deadline=timedelta(minutes=10))
    run = await run_to_completion(engine.client, engine.registry, started.id, timeout=20)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error["type"], run.error["message"]) == ("PaymentDeclined", "card declined")
    assert run.attempt == 1


async def test_a_step_retry_that_would_start_after_the_deadline_fails_the_step_at_once(
    engine: Engine,
) -> None:
    hourly = RetryPolicy(max_attempts=5, initial_interval=3600, max_interval=3600)

    def declined() -> None:
        raise PaymentDeclined("card declined")

    @workflow("charge-step-once-an-hour", registry=engine.registry)
    async def charge(ctx: Any) -> None:
        await ctx.step.run("charge", declined, retry=hourly)

    started = await engine.client.start(charge, deadline=timedelta(seconds=5))
    run = await run_to_completion(engine.client, engine.registry, started.id, timeout=20)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepFailed"
    assert "failed after 1 attempt(s): PaymentDeclined: card declined" in run.error["message"]
    [step] = await engine.client.steps(run.id)
    assert (step.key, step.attempts) == ("charge", 1)


async def test_a_retry_before_the_deadline_still_happens(engine: Engine) -> None:
    quick = RetryPolicy(max_attempts=2, initial_interval=0.01)

    @workflow("flaky-before-deadline", registry=engine.registry, retry=quick)
    async def flaky(ctx: Any) -> int:
        if ctx.attempt == 1:
            raise PaymentDeclined("first try")
        return int(ctx.attempt)

    run = await engine.run(flaky, deadline=timedelta(minutes=10))
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, 2)


async def test_the_deadline_sweep_keeps_the_error_of_the_last_attempt(backend: Backend) -> None:
    """A retry scheduled before the deadline that no worker starts in time: the run fails with
    the workflow's own error, which says why it failed; the deadline only stopped the retry."""
    deadline = now() + timedelta(seconds=0.5)
    run = await create(backend, deadline_at=deadline)
    claimed = await claim_one(backend)
    error = codec.encode_error(PaymentDeclined("card declined"))
    retry_at = deadline - timedelta(seconds=0.1)
    await backend.write([RetryRun(claimed.lease_token, run.id, retry_at, error)])
    await passed(deadline)
    assert await backend.expire_runs() == 1
    expired = await backend.get_run(run.id)
    assert expired is not None
    assert expired.status is RunStatus.FAILED
    assert expired.error is not None
    assert json.loads(expired.error)["type"] == "PaymentDeclined"


async def test_the_deadline_sweep_fails_a_run_without_error_with_deadline_exceeded(
    backend: Backend,
) -> None:
    deadline = now() + timedelta(seconds=0.2)
    run = await create(backend, deadline_at=deadline)
    await passed(deadline)
    assert await backend.expire_runs() == 1
    expired = await backend.get_run(run.id)
    assert expired is not None
    assert expired.error is not None
    assert json.loads(expired.error)["type"] == "DeadlineExceeded"


@pytest.mark.parametrize("failed_attempts", [10**5, 10**6, 10**100])
@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        RetryPolicy(initial_interval=5e-324, backoff_coefficient=2, max_interval=3600),
        RetryPolicy(initial_interval=1e-300, backoff_coefficient=1e300, max_interval=3600),
        RetryPolicy(initial_interval=0.001, backoff_coefficient=1.001, max_interval=3600),
    ],
    ids=["default", "tiny-initial", "huge-coefficient", "tiny-coefficient"],
)
def test_backoff_is_capped_for_any_attempt_count(policy: RetryPolicy, failed_attempts: int) -> None:
    assert policy.delay(failed_attempts) == timedelta(seconds=policy.max_interval)


def test_backoff_never_leaves_its_bounds() -> None:
    policy = RetryPolicy(initial_interval=0.5, backoff_coefficient=3, max_interval=100)
    delays = [policy.delay(n).total_seconds() for n in range(2000)]
    assert delays[:5] == [0.5, 0.5, 1.5, 4.5, 13.5]
    assert delays == sorted(delays)
    assert max(delays) == 100
    assert RetryPolicy(initial_interval=0, max_interval=5).delay(10**100) == timedelta(0)
    assert RetryPolicy(initial_interval=9, max_interval=5).delay(1) == timedelta(seconds=5)


@pytest.mark.parametrize("field", ["initial_interval", "max_interval", "backoff_coefficient"])
@pytest.mark.parametrize("value", [math.nan, math.inf, 1e300])
def test_a_policy_refuses_intervals_it_cannot_wait(field: str, value: float) -> None:
    if field == "backoff_coefficient" and value == 1e300:
        assert RetryPolicy(backoff_coefficient=value).delay(10**6).total_seconds() == 60
        return
    with pytest.raises(pydantic.ValidationError, match=field):
        RetryPolicy(**{field: value})
