"""Steps inside ``asyncio.gather`` run concurrently; each is persisted as its own step."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from stepwise import Registry, RunStatus, StepStatus, workflow
from tests.conftest import Engine


async def test_gathered_steps_run_concurrently_and_each_is_stored(engine: Engine) -> None:
    # Each step waits until all three have started: sequential execution would time out.
    started = 0
    all_started = asyncio.Event()

    def make(name: str) -> Any:
        async def step() -> str:
            nonlocal started
            started += 1
            if started == 3:
                all_started.set()
            await asyncio.wait_for(all_started.wait(), timeout=5)
            return name

        return step

    @workflow("fetch-all", registry=Registry())
    async def fetch_all(ctx: Any) -> list[str]:
        return list(
            await asyncio.gather(
                ctx.step.run("fetch-user", make("user")),
                ctx.step.run("fetch-subscription", make("subscription")),
                ctx.step.run("fetch-settings", make("settings")),
            )
        )

    run = await engine.run(fetch_all)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == ["user", "subscription", "settings"]
    steps = await engine.client.steps(run.id)
    assert {s.key for s in steps} == {"fetch-user", "fetch-subscription", "fetch-settings"}
    assert all(s.status is StepStatus.COMPLETED and s.attempts == 1 for s in steps)


async def test_sync_steps_run_in_threads_concurrently(engine: Engine) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def wait_for_peers() -> int:
        return barrier.wait()

    @workflow("sync-parallel", registry=Registry())
    async def sync_parallel(ctx: Any) -> list[int]:
        return sorted(
            await asyncio.gather(*(ctx.step.run(f"s{i}", wait_for_peers) for i in range(3)))
        )

    run = await engine.run(sync_parallel)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == [0, 1, 2]


async def test_dependent_steps_are_awaited_in_order(engine: Engine) -> None:
    order: list[str] = []

    def fetch_user() -> dict[str, int]:
        order.append("user")
        return {"id": 7}

    @workflow("dependent", registry=Registry())
    async def dependent(ctx: Any) -> list[dict[str, int]]:
        user = await ctx.step.run("fetch-user", fetch_user)
        orders: list[dict[str, int]] = await ctx.step.run(
            "fetch-orders", lambda: order.append("orders") or [{"user": user["id"]}]
        )
        return orders

    run = await engine.run(dependent)
    assert run.output == [{"user": 7}]
    assert order == ["user", "orders"]
    assert [s.key for s in await engine.client.steps(run.id)] == ["fetch-user", "fetch-orders"]
