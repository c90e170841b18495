"""Child workflows: ``ctx.step.run_workflow`` and ``ctx.step.start_workflow``, on both backends.

A child starts once per memo key; its output (or its failure) reaches the parent; a parent
waiting for children holds no worker slot and resumes once when the last one ends; a timeout
raises and leaves the child running; canceling a parent cancels its unfinished children.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from stepwise import (
    ChildWorkflowFailed,
    ChildWorkflowTimeout,
    Run,
    RunStatus,
    StepStatus,
    workflow,
)
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def children_of(engine: Engine, run_id: str) -> list[Run]:
    """The child runs that the steps of run ``run_id`` started, in the order they started."""
    steps = await engine.client.steps(run_id)
    return [await engine.client.get(s.child_id) for s in steps if s.child_id is not None]


@asynccontextmanager
async def serving(engine: Engine, **kw: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.worker(**kw).run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def test_a_child_runs_once_and_its_output_reaches_the_parent(engine: Engine) -> None:
    ran: Counter[str] = Counter()

    @workflow("double", registry=engine.registry)
    async def double(ctx: Any) -> int:
        ran["child step"] += 1
        return int(await ctx.step.run("times-two", lambda: ctx.input["n"] * 2))

    @workflow("parent", registry=engine.registry)
    async def parent(ctx: Any) -> Any:
        ran["parent body"] += 1
        value = await ctx.step.run_workflow(double, {"n": 21})
        after = await ctx.step.run("after", lambda: value + 1)
        return {"child": value, "after": after}

    run = await engine.run(parent)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == {"child": 42, "after": 43}
    steps = {s.key: s for s in await engine.client.steps(run.id)}
    assert steps["double"].status is StepStatus.COMPLETED
    assert steps["double"].output == 42
    (child,) = await children_of(engine, run.id)
    assert child.id == steps["double"].child_id
    assert (child.workflow, child.parent_id, child.parent_step) == ("double", run.id, "double")
    assert child.status is RunStatus.SUCCEEDED
    # The parent parked while the child ran, then replayed: the child started only once.
    assert ran["parent body"] == 2
    assert [s.key for s in await engine.client.steps(child.id)] == ["times-two"]


async def test_a_name_keys_the_child_and_repeats_are_indexed(engine: Engine) -> None:
    @workflow("echo", registry=engine.registry)
    async def echo(ctx: Any) -> Any:
        return ctx.input

    @workflow("names", registry=engine.registry)
    async def names(ctx: Any) -> Any:
        first = await ctx.step.run_workflow("echo", "a", name="e")
        second = await ctx.step.run_workflow("echo", "b", name="e")
        return [first, second]

    run = await engine.run(names)
    assert run.output == ["a", "b"], run.error
    keys = [s.key for s in await engine.client.steps(run.id)]
    assert keys == ["e", "e:1"]
    children = await children_of(engine, run.id)
    assert sorted((c.parent_step, c.input) for c in children) == [("e", "a"), ("e:1", "b")]


async def test_a_failed_child_raises_in_the_parent_with_its_id_and_error(
    engine: Engine,
) -> None:
    @workflow("broken", registry=engine.registry)
    async def broken(ctx: Any) -> None:
        raise ValueError("no such account")

    @workflow("catches", registry=engine.registry)
    async def catches(ctx: Any) -> Any:
        try:
            await ctx.step.run_workflow(broken)
        except ChildWorkflowFailed as exc:
            return {
                "child": exc.child_id,
                "status": exc.status,
                "type": (exc.error or {}).get("type"),
                "message": str(exc),
            }
        return "not raised"

    run = await engine.run(catches)
    assert run.status is RunStatus.SUCCEEDED, run.error
    (child,) = await children_of(engine, run.id)
    assert child.status is RunStatus.FAILED
    assert run.output == {
        "child": child.id,
        "status": "failed",
        "type": "ValueError",
        "message": (run.output or {}).get("message"),
    }
    assert "no such account" in run.output["message"]
    (step,) = await engine.client.steps(run.id)
    assert step.status is StepStatus.FAILED
    assert (step.error or {})["type"] == "ChildWorkflowFailed"


async def test_an_uncaught_child_failure_fails_the_parent(engine: Engine) -> None:
    @workflow("fails", registry=engine.registry)
    async def fails(ctx: Any) -> None:
        raise RuntimeError("boom")

    @workflow("lets-it-fail", registry=engine.registry)
    async def lets_it_fail(ctx: Any) -> None:
        await ctx.step.run_workflow(fails)

    run = await engine.run(lets_it_fail)
    assert run.status is RunStatus.FAILED
    error = run.error or {}
    assert error["type"] == "ChildWorkflowFailed"
    assert "RuntimeError: boom" in error["message"]


async def test_a_timeout_raises_and_leaves_the_child_running(engine: Engine) -> None:
    release = asyncio.Event()

    @workflow("slow-child", registry=engine.registry)
    async def slow_child(ctx: Any) -> str:
        async def wait() -> str:
            await release.wait()
            return "late"

        return str(await ctx.step.run("wait", wait))

    @workflow("impatient", registry=engine.registry)
    async def impatient(ctx: Any) -> Any:
        try:
            return await ctx.step.run_workflow(slow_child, timeout=0.5)
        except ChildWorkflowTimeout as exc:
            return {"timed out": exc.child_id}

    async with serving(engine):
        run = await engine.client.start(impatient)
        done = await engine.client.wait_finished(run.id, timeout=20)
        assert done.status is RunStatus.SUCCEEDED, done.error
        (child,) = await children_of(engine, run.id)
        assert done.output == {"timed out": child.id}
        assert not (await engine.client.get(child.id)).finished
        (step,) = await engine.client.steps(run.id)
        assert step.status is StepStatus.FAILED
        assert (step.error or {})["type"] == "ChildWorkflowTimeout"
        release.set()
        assert await engine.client.wait(child.id, timeout=20) == "late"
    # The child's late end does not change the parent's step.
    (step,) = await engine.client.steps(run.id)
    assert step.status is StepStatus.FAILED


async def test_start_workflow_returns_a_handle_whose_result_waits_later(engine: Engine) -> None:
    @workflow("square", registry=engine.registry)
    async def square(ctx: Any) -> int:
        return int(ctx.input) ** 2

    @workflow("starts", registry=engine.registry)
    async def starts(ctx: Any) -> Any:
        handle = await ctx.step.start_workflow(square, 7)
        meanwhile = await ctx.step.run("meanwhile", lambda: "done")
        return {"id": handle.id, "result": await handle.result(), "meanwhile": meanwhile}

    run = await engine.run(starts)
    assert run.status is RunStatus.SUCCEEDED, run.error
    (child,) = await children_of(engine, run.id)
    assert run.output == {"id": child.id, "result": 49, "meanwhile": "done"}


async def test_a_child_that_ended_before_its_result_is_awaited(engine: Engine) -> None:
    @workflow("fast", registry=engine.registry)
    async def fast(ctx: Any) -> str:
        return "fast"

    @workflow("awaits-late", registry=engine.registry)
    async def awaits_late(ctx: Any) -> Any:
        handle = await ctx.step.start_workflow(fast)
        await ctx.step.sleep("nap", 1.0)
        return await handle.result()

    run = await engine.run(awaits_late)
    assert run.output == "fast", run.error


async def test_a_waiting_parent_holds_no_worker_slot(engine: Engine) -> None:
    @workflow("leaf", registry=engine.registry)
    async def leaf(ctx: Any) -> str:
        return str(await ctx.step.run("work", lambda: "leaf done"))

    @workflow("root", registry=engine.registry)
    async def root(ctx: Any) -> Any:
        return await ctx.step.run_workflow(leaf)

    async with serving(engine, concurrency=1):
        run = await engine.client.start(root)
        assert await engine.client.wait(run.id, timeout=20) == "leaf done"


async def test_canceling_a_parent_cancels_its_children_and_theirs(engine: Engine) -> None:
    @workflow("grandchild", registry=engine.registry)
    async def grandchild(ctx: Any) -> None:
        await ctx.step.sleep("forever", 3600)

    @workflow("child", registry=engine.registry)
    async def child(ctx: Any) -> None:
        await ctx.step.run_workflow(grandchild)

    @workflow("top", registry=engine.registry)
    async def top(ctx: Any) -> None:
        await ctx.step.run_workflow(child)

    async with serving(engine):
        run = await engine.client.start(top)

        async def family() -> list[Any]:
            children = await children_of(engine, run.id)
            grandchildren = [g for c in children for g in await children_of(engine, c.id)]
            return children + grandchildren

        async def all_sleeping() -> bool:
            runs = [await engine.client.get(run.id), *await family()]
            return len(runs) == 3 and all(r.status is RunStatus.SLEEPING for r in runs)

        await until(all_sleeping, "the three runs to sleep")
        canceled = await engine.client.cancel(run.id)
        assert canceled.status is RunStatus.CANCELED
        assert [r.status for r in await family()] == [RunStatus.CANCELED] * 2
        for member in await family():
            assert all(
                s.status is not StepStatus.SLEEPING for s in await engine.client.steps(member.id)
            )


async def test_a_finished_child_is_not_canceled_with_its_parent(engine: Engine) -> None:
    @workflow("done-child", registry=engine.registry)
    async def done_child(ctx: Any) -> str:
        return "done"

    @workflow("lingers", registry=engine.registry)
    async def lingers(ctx: Any) -> None:
        await ctx.step.run_workflow(done_child)
        await ctx.step.sleep("linger", 3600)

    async with serving(engine):
        run = await engine.client.start(lingers)

        async def parked() -> bool:
            return (await engine.client.get(run.id)).status is RunStatus.SLEEPING and any(
                s.key == "linger" for s in await engine.client.steps(run.id)
            )

        await until(parked, "the parent to sleep after its child")
        await engine.client.cancel(run.id)
    (child,) = await children_of(engine, run.id)
    assert child.status is RunStatus.SUCCEEDED


@pytest.mark.parametrize("fan_out", [300])
async def test_a_fan_out_resumes_its_parent_once(engine: Engine, fan_out: int) -> None:
    executions: Counter[str] = Counter()

    @workflow("item", registry=engine.registry)
    async def item(ctx: Any) -> int:
        return int(await ctx.step.run("compute", lambda: ctx.input * 10))

    @workflow("fan-out", registry=engine.registry)
    async def fan(ctx: Any) -> int:
        executions[ctx.run_id] += 1
        results = await asyncio.gather(
            *(ctx.step.run_workflow(item, i, name=f"item-{i}") for i in range(fan_out))
        )
        return sum(results)

    run = await engine.client.start(fan)
    done = await run_to_completion(
        engine.client, engine.registry, run.id, concurrency=20, timeout=240
    )
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.output == sum(i * 10 for i in range(fan_out))
    children = await children_of(engine, run.id)
    assert len(children) == fan_out
    assert all(c.status is RunStatus.SUCCEEDED for c in children)
    # The first execution started the children and parked; the last child's end made the
    # parent due once: one more execution, not one per child.
    assert executions[run.id] == 2
