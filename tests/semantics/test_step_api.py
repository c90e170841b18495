"""The step API cannot be misused silently: arguments are bound at the call (no late-binding
trap in loops), a non-callable step is a ``TypeError`` naming the step, and a step that was
never awaited fails the run naming it instead of letting it succeed without the step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepwise import Registry, RunStatus, StepNotCallable, workflow
from tests.conftest import Engine


def square(value: int, *, plus: int = 0) -> int:
    return value * value + plus


async def slow_square(value: int, *, plus: int = 0) -> int:
    await asyncio.sleep(0)
    return value * value + plus


async def test_arguments_are_bound_at_the_call_in_a_loop(engine: Engine) -> None:
    @workflow("bound-in-a-loop", registry=Registry())
    async def bound(ctx: Any) -> list[int]:
        calls = [ctx.step.run(f"p-{i}", square, i) for i in (1, 2, 3)]
        calls += [ctx.step.run(f"a-{i}", slow_square, i, plus=i) for i in (1, 2, 3)]
        return list(await asyncio.gather(*calls))

    run = await engine.run(bound)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == [1, 4, 9, 2, 6, 12]
    steps = {s.key: s.output for s in await engine.client.steps(run.id)}
    assert steps == {"p-1": 1, "p-2": 4, "p-3": 9, "a-1": 2, "a-2": 6, "a-3": 12}


async def test_keywords_reach_the_function_except_retry(engine: Engine) -> None:
    def describe(name: str, retry: int = -1) -> str:
        return f"{name}:{retry}"

    @workflow("keywords", registry=Registry())
    async def keywords(ctx: Any) -> list[str]:
        return [
            await ctx.step.run("named", describe, name="ada"),
            await ctx.step.run("positional", describe, "bob", 2),
        ]

    run = await engine.run(keywords)
    assert run.output == ["ada:-1", "bob:2"]


async def test_a_non_callable_step_is_a_type_error_naming_the_step(engine: Engine) -> None:
    @workflow("not-callable", registry=Registry())
    async def not_callable(ctx: Any) -> str:
        with pytest.raises(TypeError) as raised:
            ctx.step.run("computed-too-early", square(3))  # no await: raised at the call
        assert isinstance(raised.value, StepNotCallable)
        return str(raised.value)

    run = await engine.run(not_callable)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output.startswith("step 'computed-too-early': the step function must be callable")
    assert "got int" in run.output
    assert await engine.client.steps(run.id) == []


async def test_an_uncaught_non_callable_step_fails_the_run(engine: Engine) -> None:
    @workflow("not-callable-uncaught", registry=Registry())
    async def uncaught(ctx: Any) -> int:
        result: int = await ctx.step.run("value", square(3))
        return result

    run = await engine.run(uncaught)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepNotCallable"
    assert "'value'" in run.error["message"]


async def test_a_step_never_awaited_fails_the_run_naming_it(engine: Engine) -> None:
    ran: list[str] = []

    def record(name: str) -> str:
        ran.append(name)
        return name

    @workflow("forgot-await", registry=Registry())
    async def forgot(ctx: Any) -> str:
        await ctx.step.run("awaited", record, "awaited")
        ctx.step.run("charge-card", record, "charge-card")  # the missing await
        ctx.step.run("send-receipt", record, "send-receipt")
        return "done"

    run = await engine.run(forgot)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepNotAwaited"
    assert run.error["message"] == (
        "step 'charge-card': was never awaited (and 'send-receipt'); "
        "await ctx.step.run(...) or pass it to asyncio.gather"
    )
    assert ran == ["awaited"]
    assert [s.key for s in await engine.client.steps(run.id)] == ["awaited"]
    assert run.attempt == 1


async def test_a_step_not_awaited_before_the_workflow_fails_keeps_the_workflows_error(
    engine: Engine,
) -> None:
    @workflow("forgot-then-raised", registry=Registry())
    async def forgot_then_raised(ctx: Any) -> None:
        ctx.step.run("forgotten", square, 2)
        raise LookupError("the workflow's own error")

    run = await engine.run(forgot_then_raised)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert (run.error["type"], run.error["message"]) == ("LookupError", "the workflow's own error")
