"""Durable sleep frees the worker; cancel; deadlines; idempotency keys; versions; input models;
a workflow no worker knows waits, visibly."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from stepwise import (
    InvalidInput,
    Registry,
    RunStatus,
    WorkflowContext,
    workflow,
)
from tests.conftest import Engine


async def wait_for_status(engine: Engine, run_id: str, status: RunStatus) -> None:
    deadline = time.monotonic() + 10
    while (await engine.client.get(run_id)).status is not status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        await asyncio.sleep(0.02)


async def test_durable_sleep_frees_the_worker_slot(engine: Engine) -> None:
    registry = engine.registry

    @workflow("sleeper", registry=registry)
    async def sleeper(ctx: Any) -> str:
        await ctx.step.sleep("nap", 1.0)
        return "rested"

    @workflow("quick", registry=registry)
    async def quick(ctx: Any) -> str:
        return str(await ctx.step.run("work", lambda: "done"))

    worker = engine.worker(concurrency=1)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        sleeping = await engine.client.start(sleeper)
        await wait_for_status(engine, sleeping.id, RunStatus.SLEEPING)
        # The only slot is free again: another run completes while the first one sleeps.
        other = await engine.client.start(quick)
        assert await engine.client.wait(other.id, timeout=10) == "done"
        assert (await engine.client.get(sleeping.id)).status is RunStatus.SLEEPING
        assert await engine.client.wait(sleeping.id, timeout=10) == "rested"
    finally:
        stop.set()
        await serving
    (nap,) = await engine.client.steps(sleeping.id)
    assert nap.wake_at is not None
    assert nap.finished_at is not None
    assert nap.finished_at >= nap.wake_at


async def test_cancel_a_pending_run(engine: Engine) -> None:
    @workflow("never-runs", registry=engine.registry)
    async def never_runs(ctx: Any) -> None:
        raise AssertionError("a canceled run must not execute")

    run = await engine.client.start(never_runs)
    canceled = await engine.client.cancel(run.id)
    assert canceled.status is RunStatus.CANCELED
    assert (await engine.client.cancel(run.id)).status is RunStatus.CANCELED  # idempotent


async def test_cancel_stops_a_running_workflow_at_the_next_step_boundary(engine: Engine) -> None:
    release = asyncio.Event()
    after_cancel: list[str] = []

    async def blocked() -> str:
        await release.wait()
        return "first"

    @workflow("cancelable", registry=engine.registry)
    async def cancelable(ctx: Any) -> None:
        await ctx.step.run("first", blocked)
        await ctx.step.run("second", lambda: after_cancel.append("second"))

    worker = engine.worker(lease_seconds=30)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        run = await engine.client.start(cancelable)
        await wait_for_status(engine, run.id, RunStatus.RUNNING)
        await engine.client.cancel(run.id)
        release.set()
        deadline = time.monotonic() + 10
        while worker.active:
            assert time.monotonic() < deadline, "the worker kept executing a canceled run"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await serving
    assert after_cancel == []
    assert (await engine.client.get(run.id)).status is RunStatus.CANCELED


async def test_a_deadline_fails_a_run_that_runs_too_long(engine: Engine) -> None:
    @workflow("too-slow", registry=Registry())
    async def too_slow(ctx: Any) -> None:
        await ctx.step.run("forever", lambda: asyncio.sleep(30))

    run = await engine.run(too_slow, deadline=timedelta(seconds=0.5))
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "DeadlineExceeded"


async def test_a_pending_run_past_its_deadline_is_failed_by_the_sweep(engine: Engine) -> None:
    run = await engine.client.start("nobody-serves-this", deadline=timedelta(seconds=0.05))
    deadline = time.monotonic() + 10
    while await engine.client.backend.expire_runs() == 0:  # the sweep fails it once due
        assert time.monotonic() < deadline, "the deadline sweep never failed the run"
        await asyncio.sleep(0.02)
    expired = await engine.client.get(run.id)
    assert expired.status is RunStatus.FAILED


async def test_an_idempotency_key_starts_one_run(engine: Engine) -> None:
    calls = 0

    def once() -> int:
        nonlocal calls
        calls += 1
        return calls

    @workflow("charge", registry=engine.registry)
    async def charge(ctx: Any) -> int:
        return int(await ctx.step.run("charge-card", once))

    first = await engine.client.start(charge, {"cents": 100}, idempotency_key="order-1")
    again = await engine.client.start(charge, {"cents": 100}, idempotency_key="order-1")
    assert first.id == again.id
    done = await engine.run(charge, {"cents": 100}, idempotency_key="order-1")
    assert done.id == first.id
    assert done.output == 1
    assert calls == 1


async def test_ctx_version_is_the_version_the_run_started_with(engine: Engine) -> None:
    @workflow("versioned", version="v2", registry=Registry())
    async def current(ctx: Any) -> str:
        return f"current path for {ctx.version}"

    @workflow("versioned", version="v1", registry=Registry())
    async def legacy(ctx: Any) -> str:
        return f"legacy path for {ctx.version}"

    assert (await engine.run(current)).output == "current path for v2"
    assert (await engine.run(legacy)).output == "legacy path for v1"


class Order(BaseModel):
    order_id: int
    cents: int


async def test_input_is_validated_by_the_declared_model(engine: Engine) -> None:
    @workflow("typed", registry=Registry())
    async def typed(ctx: WorkflowContext[Order]) -> int:
        assert isinstance(ctx.input, Order)
        return ctx.input.cents

    assert (await engine.run(typed, {"order_id": 1, "cents": "250"})).output == 250
    with pytest.raises(InvalidInput, match=r"typed.*Order"):
        await engine.client.start(typed, {"order_id": "not a number"})


async def test_a_workflow_no_worker_knows_waits_visibly(engine: Engine) -> None:
    run = await engine.client.start("arrives-later", {"n": 1})
    reason = await engine.client.waiting_reason(run)
    assert reason is not None
    assert "arrives-later" in reason

    @workflow("arrives-later", registry=engine.registry)
    async def arrives_later(ctx: Any) -> int:
        return int(ctx.input["n"]) + 1

    worker = engine.worker()
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        assert await engine.client.wait(run.id, timeout=10) == 2
        assert await engine.client.waiting_reason(await engine.client.get(run.id)) is None
    finally:
        stop.set()
        await serving
