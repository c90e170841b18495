"""Per-step timeouts: an attempt past ``timeout`` fails with ``StepTimeout`` and is retried per
the step's policy. An async function is cancelled. A sync function's thread cannot be killed:
it runs on, and what it returns after its attempt ended never reaches the journal, even when it
returns while the run is still executing under the same lease.

No test waits for time to pass: a timed-out function blocks on an event that the test sets
only once its attempt was recorded as timed out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stepwise import (
    NO_RETRY,
    Registry,
    RetryPolicy,
    RunStatus,
    StepFailed,
    StepStatus,
    StepTimeout,
    workflow,
)
from tests.conftest import Engine

TWICE = RetryPolicy(max_attempts=2, initial_interval=0.01)
SHORT = 0.2
"""The timeout of a step that is meant to time out: it blocks until the test releases it."""
PATIENCE = 30.0
"""How long a blocked function waits for its release before giving up (never reached)."""
DROPPED = "its thread returned after its attempt ended"
CONCEPTS = Path(__file__).parents[2] / "docs" / "concepts.md"


async def test_an_async_step_past_its_timeout_is_cancelled_and_retried(engine: Engine) -> None:
    cancelled: list[int] = []
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await asyncio.Event().wait()  # forever
            except asyncio.CancelledError:
                cancelled.append(calls)
                raise
        return f"attempt {calls}"

    @workflow("async-timeout", registry=Registry())
    async def flow(ctx: Any) -> str:
        result: str = await ctx.step.run("call", hangs_once, retry=TWICE, timeout=SHORT)
        return result

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == "attempt 2"
    assert cancelled == [1]
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts, step.output) == (StepStatus.COMPLETED, 2, "attempt 2")


async def test_a_step_that_keeps_timing_out_fails_with_step_timeout(engine: Engine) -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    @workflow("always-late", registry=Registry())
    async def flow(ctx: Any) -> list[Any]:
        try:
            await ctx.step.run("call", hangs, retry=TWICE, timeout=timedelta(seconds=SHORT))
        except StepFailed as exc:
            return [exc.error_type, exc.attempts]
        return []

    run = await engine.run(flow)
    assert run.output == ["StepTimeout", 2]
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 2)
    assert step.error is not None
    assert step.error["type"] == "StepTimeout"
    assert "did not finish within its timeout of 0.2s" in step.error["message"]


async def test_an_async_step_that_swallows_its_cancellation_is_still_late(
    engine: Engine,
) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "too late"  # swallowed: the attempt has timed out all the same
        return "never"

    @workflow("stubborn", registry=Registry())
    async def flow(ctx: Any) -> None:
        await ctx.step.run("call", stubborn, retry=NO_RETRY, timeout=SHORT)

    run = await engine.run(flow)
    assert run.status is RunStatus.FAILED
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.output) == (StepStatus.FAILED, None)
    assert step.error is not None
    assert step.error["type"] == "StepTimeout"


async def test_a_late_sync_result_never_lands_in_the_journal(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The first attempt's thread returns "late" while the run still executes: the second
    attempt releases it and waits for it to end before returning "second" itself."""
    release = threading.Event()
    first: list[threading.Thread] = []

    def fetch() -> str:
        if not first:
            first.append(threading.current_thread())
            assert release.wait(PATIENCE)
            return "late"
        release.set()
        first[0].join(PATIENCE)  # its result reaches the loop before ours does
        assert not first[0].is_alive()
        return "second"

    @workflow("late-sync", registry=Registry())
    async def flow(ctx: Any) -> str:
        result: str = await ctx.step.run("fetch", fetch, retry=TWICE, timeout=SHORT)
        return result

    with caplog.at_level(logging.WARNING, logger="stepwise.core.calls"):
        run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == "second"
    (step,) = await engine.client.steps(run.id)
    assert (step.status, step.attempts, step.output) == (StepStatus.COMPLETED, 2, "second")
    assert [r.getMessage() for r in caplog.records if DROPPED in r.getMessage()] == [
        f"step 'fetch': {DROPPED}; dropped what it returned"
    ]


async def test_a_late_sync_result_never_revives_a_failed_step(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """No retry: the step fails; the workflow catches it, then a second step releases the
    late thread and waits for it to end, so "late" comes back while the run still holds its
    lease. The step stays failed, with no output."""
    release = threading.Event()
    late: list[threading.Thread] = []

    def slow() -> str:
        late.append(threading.current_thread())
        assert release.wait(PATIENCE)
        return "late"

    def let_it_finish() -> bool:
        release.set()
        late[0].join(PATIENCE)
        return not late[0].is_alive()

    @workflow("late-after-failure", registry=Registry())
    async def flow(ctx: Any) -> list[Any]:
        try:
            await ctx.step.run("slow", slow, retry=NO_RETRY, timeout=SHORT)
        except StepFailed as exc:
            outcome: list[Any] = [exc.error_type]
        outcome.append(await ctx.step.run("let-it-finish", let_it_finish))
        return outcome

    with caplog.at_level(logging.WARNING, logger="stepwise.core.calls"):
        run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == ["StepTimeout", True]
    steps = {s.key: s for s in await engine.client.steps(run.id)}
    assert (steps["slow"].status, steps["slow"].attempts) == (StepStatus.FAILED, 1)
    assert steps["slow"].output is None
    assert steps["slow"].error is not None
    assert steps["slow"].error["type"] == "StepTimeout"
    assert any(DROPPED in r.getMessage() for r in caplog.records)


async def test_a_timeout_fails_only_its_own_step(engine: Engine) -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def quick(n: int) -> int:
        await asyncio.sleep(0)
        return n

    @workflow("gathered-timeout", registry=Registry())
    async def flow(ctx: Any) -> list[Any]:
        results = await asyncio.gather(
            ctx.step.run("a", quick, 1),
            ctx.step.run("hangs", hangs, retry=NO_RETRY, timeout=SHORT),
            ctx.step.run("b", quick, 2, timeout=60),
            return_exceptions=True,
        )
        return [r if isinstance(r, int) else type(r).__name__ for r in results]

    run = await engine.run(flow)
    assert run.output == [1, "StepFailed", 2]


async def test_a_timeout_can_be_non_retryable(engine: Engine) -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    policy = RetryPolicy(max_attempts=5, initial_interval=0.01, non_retryable=StepTimeout)

    @workflow("timeout-is-final", registry=Registry())
    async def flow(ctx: Any) -> None:
        await ctx.step.run("call", hangs, retry=policy, timeout=SHORT)

    run = await engine.run(flow)
    assert run.status is RunStatus.FAILED
    (step,) = await engine.client.steps(run.id)
    assert step.attempts == 1


async def test_a_keyword_named_timeout_reaches_fn_through_partial(engine: Engine) -> None:
    def fetch(url: str, *, timeout: float) -> list[Any]:
        return [url, timeout]

    @workflow("partial-timeout", registry=Registry())
    async def flow(ctx: Any) -> Any:
        return await ctx.step.run("fetch", functools.partial(fetch, timeout=5), "u", timeout=60)

    run = await engine.run(flow)
    assert run.output == ["u", 5]


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), timedelta(days=-1)])
async def test_a_timeout_out_of_range_fails_the_run_at_the_call(
    engine: Engine, timeout: Any
) -> None:
    ran = False

    def never() -> None:
        nonlocal ran
        ran = True

    @workflow("bad-timeout", registry=Registry())
    async def flow(ctx: Any) -> None:
        await ctx.step.run("call", never, timeout=timeout)

    run = await engine.run(flow)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "InvalidArgument"
    assert "timeout of step 'call'" in run.error["message"]
    assert not ran
    assert await engine.client.steps(run.id) == []


def _concepts_example() -> dict[str, Any]:
    """The Python block of docs/concepts.md's "Timeouts and retry policies", executed."""
    text = CONCEPTS.read_text()
    section = text.split("## Timeouts and retry policies\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "concepts_timeouts_example"}
    exec(compile(code, str(CONCEPTS), "exec"), namespace)
    return namespace


async def test_the_documented_example_runs(engine: Engine) -> None:
    example = _concepts_example()
    paid = await engine.run(example["pay_order"], {"id": 7, "card": "ok", "amount": 12})
    assert paid.output == {"order": 7, "charged": 12}
    declined = await engine.run(example["pay_order"], {"id": 8, "card": "declined", "amount": 1})
    assert declined.status is RunStatus.FAILED
    assert declined.error is not None
    assert "CardDeclined: card of order 8 declined" in declined.error["message"]
    (step,) = await engine.client.steps(declined.id)
    assert step.attempts == 1
