"""Retries with exponential backoff per step; workflow-level retry is off unless asked for."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from stepwise import Registry, RetryPolicy, RunStatus, StepStatus, workflow
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
