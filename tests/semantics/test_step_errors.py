"""A failing parallel step: ``gather`` raises its error in the workflow, which may catch it;
with ``return_exceptions=True`` the workflow gets every result and every error."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import NO_RETRY, Registry, RunStatus, StepFailed, StepStatus, workflow
from tests.conftest import Engine


def ok() -> str:
    return "fine"


def broken() -> str:
    raise ConnectionError("Database unavailable")


async def test_gather_raises_the_step_error_and_the_workflow_may_catch_it(engine: Engine) -> None:
    @workflow("catches", registry=Registry())
    async def catches(ctx: Any) -> str:
        try:
            await asyncio.gather(
                ctx.step.run("fetch-user", ok),
                ctx.step.run("fetch-settings", broken, retry=NO_RETRY),
            )
        except StepFailed as exc:
            return f"{exc.step}|{exc.error_type}|{exc.error_message}"
        return "unreachable"

    run = await engine.run(catches)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == "fetch-settings|ConnectionError|Database unavailable"
    steps = {s.key: s for s in await engine.client.steps(run.id)}
    assert steps["fetch-settings"].status is StepStatus.FAILED
    assert steps["fetch-settings"].error is not None
    assert steps["fetch-settings"].error["message"] == "Database unavailable"


async def test_return_exceptions_gives_every_result_and_error(engine: Engine) -> None:
    @workflow("settled", registry=Registry())
    async def settled(ctx: Any) -> list[str]:
        results = await asyncio.gather(
            ctx.step.run("a", ok),
            ctx.step.run("b", broken, retry=NO_RETRY),
            ctx.step.run("c", ok),
            return_exceptions=True,
        )
        return [f"rejected:{r.step}" if isinstance(r, StepFailed) else r for r in results]

    run = await engine.run(settled)
    assert run.output == ["fine", "rejected:b", "fine"]


async def test_an_uncaught_step_failure_fails_the_run_naming_the_step(engine: Engine) -> None:
    @workflow("uncaught", registry=Registry())
    async def uncaught(ctx: Any) -> None:
        await asyncio.gather(ctx.step.run("explode", broken, retry=NO_RETRY))

    run = await engine.run(uncaught)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepFailed"
    assert "explode" in run.error["message"]
    assert run.attempt == 1  # workflow-level retry is off by default


async def test_failed_step_is_not_rerun_on_replay(engine: Engine) -> None:
    calls = 0

    def counted_failure() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("nope")

    @workflow("fails-then-sleeps", registry=Registry())
    async def fails_then_sleeps(ctx: Any) -> str:
        try:
            await ctx.step.run("fragile", counted_failure, retry=NO_RETRY)
        except StepFailed as exc:
            await ctx.step.sleep("nap", 0.1)
            return exc.error_message
        return "unreachable"

    run = await engine.run(fails_then_sleeps)
    assert run.output == "nope"
    assert calls == 1  # the replay after the sleep re-raised the stored failure
