"""Steps are steps: whatever user code raises is a failure of its step (or of its run).

``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` and a ``CancelledError`` raised by
the code itself are stored and retried like any error; they never end the worker nor make the
run be released and claimed again. Only a cancellation of the step's task (the engine
stopping the run, or the workflow's own ``wait_for``) is a cancellation.

Steps do not nest: ``ctx.step.run``/``ctx.step.sleep`` called from a step's function (sync,
in its thread, or async) is refused at the call with ``NestedStepError``, which names both
steps; the inner step is never stored, so a later step of that name runs its own function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stepwise import NO_RETRY, Registry, RetryPolicy, RunStatus, StepStatus, workflow
from tests.conftest import Engine

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01, backoff_coefficient=2, max_interval=0.1)

BASE_EXCEPTIONS: list[Callable[[], BaseException]] = [
    lambda: SystemExit(3),
    lambda: KeyboardInterrupt("pressed"),
    lambda: GeneratorExit("closed"),
    lambda: asyncio.CancelledError("by the step itself"),
]
IDS = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "CancelledError"]


def _raiser(make: Callable[[], BaseException], *, is_async: bool) -> Callable[[], Any]:
    calls = []

    def sync_step() -> None:
        calls.append(1)
        raise make()

    async def async_step() -> None:
        calls.append(1)
        raise make()

    return async_step if is_async else sync_step


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("make", BASE_EXCEPTIONS, ids=IDS)
async def test_a_base_exception_in_a_step_is_its_failure_retried_per_policy(
    engine: Engine, make: Callable[[], BaseException], is_async: bool
) -> None:
    step = _raiser(make, is_async=is_async)
    name = type(make()).__name__

    @workflow("raises-in-step", registry=Registry())
    async def raises(ctx: Any) -> str:
        try:
            await ctx.step.run("explode", step, retry=FAST)
        except Exception as exc:
            return f"{type(exc).__name__}|{exc.error_type}|{exc.attempts}"
        return "unreachable"

    run = await engine.run(raises)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == f"StepFailed|{name}|3"
    assert run.claims == 1  # never released and claimed again
    (stored,) = await engine.client.steps(run.id)
    assert (stored.status, stored.attempts) == (StepStatus.FAILED, 3)
    assert stored.error is not None
    assert stored.error["type"] == name


@pytest.mark.parametrize("make", BASE_EXCEPTIONS, ids=IDS)
async def test_a_base_exception_in_the_workflow_body_fails_the_run(
    engine: Engine, make: Callable[[], BaseException]
) -> None:
    name = type(make()).__name__

    @workflow("raises-in-body", registry=Registry())
    async def raises(ctx: Any) -> None:
        await ctx.step.run("before", lambda: "fine")
        raise make()

    run = await engine.run(raises)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == name
    assert run.claims == 1


async def test_a_workflow_body_that_cancels_its_own_task_fails_the_run(engine: Engine) -> None:
    @workflow("cancels-itself", registry=Registry())
    async def cancels(ctx: Any) -> None:
        await ctx.step.run("before", lambda: "fine")
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    run = await engine.run(cancels)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "CancelledError"
    assert run.claims == 1


async def test_wait_for_on_a_step_still_cancels_it(engine: Engine) -> None:
    """A step task canceled by the workflow's own ``wait_for`` is canceled, not failed: it is
    not retried, and the workflow gets its ``TimeoutError``."""
    started = 0

    async def slow() -> str:
        nonlocal started
        started += 1
        await asyncio.sleep(3600)
        return "never"

    @workflow("times-out", registry=Registry())
    async def times_out(ctx: Any) -> str:
        try:
            await asyncio.wait_for(ctx.step.run("slow", slow, retry=FAST), 0.05)
        except TimeoutError:
            return "timed out"
        return "unreachable"

    run = await engine.run(times_out)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "timed out")
    assert started == 1


async def test_a_worker_survives_a_system_exit_and_serves_the_next_run(engine: Engine) -> None:
    @workflow("exits", registry=Registry())
    async def exits(ctx: Any) -> None:
        await ctx.step.run("exit", lambda: exec("raise SystemExit(1)"), retry=NO_RETRY)

    @workflow("fine", registry=Registry())
    async def fine(ctx: Any) -> str:
        result: str = await ctx.step.run("ok", lambda: "ok")
        return result

    engine.registry.add(exits)
    engine.registry.add(fine)
    worker = engine.worker()
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        bad = await engine.client.start(exits, None)
        failed = await engine.client.wait_finished(bad.id, timeout=30)
        good = await engine.client.start(fine, None)
        succeeded = await engine.client.wait_finished(good.id, timeout=30)
    finally:
        stop.set()
        await serving
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert "SystemExit" in failed.error["message"]
    assert succeeded.status is RunStatus.SUCCEEDED


# ---- nested steps -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync-run", "async-run", "async-sleep"])
async def test_a_step_started_inside_a_step_is_refused_naming_both(
    engine: Engine, kind: str
) -> None:
    inner_ran = 0

    def inner() -> str:
        nonlocal inner_ran
        inner_ran += 1
        return "inner result"

    def make_outer(ctx: Any) -> Callable[[], Any]:
        def sync_outer() -> Any:
            return asyncio.run(ctx.step.run("shared", inner))

        async def async_outer() -> Any:
            return await ctx.step.run("shared", inner)

        async def async_sleeper() -> Any:
            await ctx.step.sleep("shared", 0)

        return {"sync-run": sync_outer, "async-run": async_outer, "async-sleep": async_sleeper}[
            kind
        ]

    @workflow("nests", registry=Registry())
    async def nests(ctx: Any) -> dict[str, str]:
        try:
            await ctx.step.run("outer", make_outer(ctx))
        except Exception as exc:
            refused = f"{type(exc).__name__}: {exc}"
        else:
            refused = "not refused"
        later = await ctx.step.run("shared", lambda: "the later step's own result")
        return {"refused": refused, "later": later}

    run = await engine.run(nests)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output["refused"].startswith("NestedStepError: step 'outer':")
    assert "'shared'" in run.output["refused"]
    assert run.output["later"] == "the later step's own result"
    assert inner_ran == 0
    steps = {s.key: s for s in await engine.client.steps(run.id)}
    assert sorted(steps) == ["outer", "shared"]
    # A programming error, not a flaky one: not retried.
    assert (steps["outer"].status, steps["outer"].attempts) == (StepStatus.FAILED, 1)
    assert steps["shared"].output == "the later step's own result"


async def test_steps_gathered_by_the_workflow_are_not_nested(engine: Engine) -> None:
    """The refusal is about a step's own function: sibling steps started by the workflow (each
    in its task, created while a step runs) are fine."""

    async def slow(value: str) -> str:
        await asyncio.sleep(0.01)
        return value

    @workflow("siblings", registry=Registry())
    async def siblings(ctx: Any) -> list[str]:
        first = ctx.step.run("a", lambda: slow("a"))
        task = asyncio.ensure_future(first)
        await asyncio.sleep(0)
        second = await ctx.step.run("b", lambda: "b")
        return [await task, second]

    run = await engine.run(siblings)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, ["a", "b"])
