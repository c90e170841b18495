"""Retries with exponential backoff per step; workflow-level retry is off unless asked for."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from stepwise import (
    NonRetryableError,
    Registry,
    RetryPolicy,
    RunStatus,
    StepFailed,
    StepStatus,
    backoff,
    workflow,
)
from tests.conftest import Engine

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01, backoff_coefficient=2, max_interval=0.1)


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(initial_interval=1, backoff_coefficient=2, max_interval=5)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert policy.allows_another(2)
    assert not policy.allows_another(3)


async def test_a_step_is_retried_until_it_succeeds(engine: Engine) -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError(f"try {calls}")
        return "ok"

    @workflow("flaky", registry=Registry())
    async def flaky_wf(ctx: Any) -> str:
        result: str = await ctx.step.run("call-api", flaky, retry=FAST)
        return result

    run = await engine.run(flaky_wf)
    assert run.status is RunStatus.SUCCEEDED
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts, step.output) == (StepStatus.COMPLETED, 3, "ok")


async def test_a_step_that_keeps_failing_fails_after_its_attempts(engine: Engine) -> None:
    @workflow("hopeless", registry=Registry())
    async def hopeless(ctx: Any) -> None:
        await ctx.step.run("call-api", lambda: 1 / 0, retry=FAST)

    run = await engine.run(hopeless)
    assert run.status is RunStatus.FAILED
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 3)
    assert step.error is not None
    assert step.error["type"] == "ZeroDivisionError"


async def test_workflow_retry_reruns_failed_steps_but_not_completed_ones(engine: Engine) -> None:
    calls: Counter[str] = Counter()

    def stable() -> str:
        calls["stable"] += 1
        return "kept"

    def fails_once() -> str:
        calls["fragile"] += 1
        if calls["fragile"] == 1:
            raise RuntimeError("first attempt of the workflow fails")
        return "recovered"

    retry = RetryPolicy(max_attempts=2, initial_interval=0.01)

    @workflow("retried", registry=Registry(), retry=retry)
    async def retried(ctx: Any) -> list[Any]:
        a = await ctx.step.run("stable", stable)
        b = await ctx.step.run("fragile", fails_once, retry=RetryPolicy(max_attempts=1))
        return [a, b, ctx.attempt]

    run = await engine.run(retried)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == ["kept", "recovered", 2]
    assert calls == {"stable": 1, "fragile": 2}


async def test_a_run_has_a_hard_cap_of_step_attempts(engine: Engine) -> None:
    @workflow("runaway", registry=engine.registry)
    async def runaway(ctx: Any) -> None:
        n = 0
        while True:  # a bug: never ends on its own
            await ctx.step.run(f"poll-{n}", lambda: None)
            n += 1

    worker = engine.worker(max_step_attempts=25)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        run = await engine.client.start(runaway)
        finished = await engine.client.wait_finished(run.id, timeout=20)
    finally:
        stop.set()
        await serving
    assert finished.status is RunStatus.FAILED
    assert finished.error is not None
    assert finished.error["type"] == "StepAttemptsExceeded"
    assert len(await engine.client.steps(run.id)) == 25


class Declined(NonRetryableError):
    """What a user raises when retrying cannot help."""


async def test_a_non_retryable_type_fails_the_step_at_once(engine: Engine) -> None:
    calls = 0

    def parse() -> None:
        nonlocal calls
        calls += 1
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "not text")  # a ValueError

    policy = RetryPolicy(
        max_attempts=5, initial_interval=0.01, non_retryable=(KeyError, ValueError)
    )

    @workflow("not-retried", registry=Registry())
    async def flow(ctx: Any) -> list[Any]:
        try:
            await ctx.step.run("parse", parse, retry=policy)
        except StepFailed as exc:
            return [exc.error_type, exc.attempts]
        return []

    run = await engine.run(flow)
    assert run.output == ["UnicodeDecodeError", 1]
    assert calls == 1
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)


async def test_a_raised_non_retryable_error_fails_the_step_at_once(engine: Engine) -> None:
    calls = 0

    def charge() -> None:
        nonlocal calls
        calls += 1
        raise Declined("card declined")

    @workflow("declined", registry=Registry())
    async def flow(ctx: Any) -> None:
        await ctx.step.run("charge", charge, retry=RetryPolicy(max_attempts=None))

    run = await engine.run(flow)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepFailed"
    assert "Declined: card declined" in run.error["message"]
    assert calls == 1


async def test_a_final_failure_stays_final_on_replay(engine: Engine) -> None:
    """The workflow caught the failure and went on; after a durable sleep the run is replayed
    from the top: the step must fail again from its record, not run again with attempts left,
    and still say that it is not retryable."""
    calls = 0

    def charge() -> None:
        nonlocal calls
        calls += 1
        raise Declined("card declined")

    @workflow("declined-then-sleeps", registry=Registry())
    async def flow(ctx: Any) -> list[Any]:
        try:
            await ctx.step.run("charge", charge, retry=FAST)
        except StepFailed as exc:
            outcome = [exc.error_type, exc.attempts, exc.retryable]
        await ctx.step.sleep("cool-down", 0.05)  # the run is put aside and replayed
        return outcome

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == ["Declined", 1, False]
    assert calls == 1


async def test_non_retryable_errors_skip_the_workflow_retry(engine: Engine) -> None:
    @workflow(
        "workflow-declined",
        registry=Registry(),
        retry=RetryPolicy(max_attempts=3, initial_interval=0.01),
    )
    async def flow(ctx: Any) -> None:
        raise Declined(f"attempt {ctx.attempt}")

    run = await engine.run(flow)
    assert run.status is RunStatus.FAILED
    assert run.attempt == 1
    assert run.error is not None
    assert (run.error["type"], run.error["message"]) == ("Declined", "attempt 1")


async def test_a_steps_non_retryable_failure_skips_the_workflow_retry(engine: Engine) -> None:
    """Rerunning the workflow would run the step again, which its policy says cannot help."""
    calls = 0

    def parse() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not a number")

    policy = RetryPolicy(max_attempts=3, initial_interval=0.01, non_retryable=ValueError)

    @workflow(
        "step-not-retryable",
        registry=Registry(),
        retry=RetryPolicy(max_attempts=3, initial_interval=0.01),
    )
    async def flow(ctx: Any) -> None:
        await ctx.step.run("parse", parse, retry=policy)

    run = await engine.run(flow)
    assert run.status is RunStatus.FAILED
    assert (run.attempt, calls) == (1, 1)
    assert run.error is not None
    assert run.error["type"] == "StepFailed"


async def test_unlimited_attempts_retry_until_the_step_succeeds(engine: Engine) -> None:
    calls = 0

    def eventually() -> int:
        nonlocal calls
        calls += 1
        if calls <= 40:  # far past the default 3 attempts
            raise ConnectionError(f"try {calls}")
        return calls

    forever = RetryPolicy(max_attempts=None, initial_interval=0, max_interval=0)

    @workflow("unlimited", registry=Registry())
    async def flow(ctx: Any) -> int:
        result: int = await ctx.step.run("connect", eventually, retry=forever)
        return result

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts, step.output) == (StepStatus.COMPLETED, 41, 41)


async def test_an_unlimited_workflow_policy_retries_past_three_attempts(engine: Engine) -> None:
    forever = RetryPolicy(max_attempts=None, initial_interval=0.01, max_interval=0.01)

    @workflow("workflow-unlimited", registry=Registry(), retry=forever)
    async def flow(ctx: Any) -> int:
        if ctx.attempt < 6:
            raise ConnectionError(f"attempt {ctx.attempt}")
        attempt: int = ctx.attempt
        return attempt

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == 6


def test_unlimited_attempts_always_allow_another() -> None:
    policy = RetryPolicy(max_attempts=None)
    assert all(policy.allows_another(n) for n in (1, 3, 10**6))
    assert policy.retry_at(10**6, None, ConnectionError()) is not None


def test_a_non_retryable_error_has_no_next_attempt() -> None:
    policy = RetryPolicy(max_attempts=None, non_retryable=KeyError)
    assert policy.non_retryable == (KeyError,)
    assert policy.retry_at(1, None, KeyError("x")) is None
    assert policy.retry_at(1, None, Declined()) is None
    assert policy.retry_at(1, None, LookupError()) is not None  # a base class is not listed


def test_jitter_spreads_the_wait_below_its_exponential() -> None:
    policy = RetryPolicy(initial_interval=1, backoff_coefficient=2, max_interval=5, jitter=0.5)
    for failures in (1, 2, 3, 50):
        base = backoff.exponential(failures, 1, 2, 5)
        waits = [policy.delay(failures).total_seconds() for _ in range(500)]
        assert all(base * 0.5 <= w <= base for w in waits)
        assert len(set(waits)) > 400, "the waits are not spread"


def test_jitter_draws_from_the_random_module_so_a_seed_repeats_it() -> None:
    policy = RetryPolicy(jitter=0.3)
    random.seed(1234)
    first = [policy.delay(n) for n in range(1, 20)]
    random.seed(1234)
    assert [policy.delay(n) for n in range(1, 20)] == first


def test_without_jitter_the_wait_is_exact() -> None:
    policy = RetryPolicy(initial_interval=0.5, backoff_coefficient=3, max_interval=100)
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3)] == [0.5, 1.5, 4.5]


@pytest.mark.parametrize(
    "fields",
    [
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"jitter": math.nan},
        {"max_attempts": 0},
        {"non_retryable": (1,)},
        {"non_retryable": ("ValueError",)},
    ],
)
def test_a_policy_out_of_range_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(**fields)
