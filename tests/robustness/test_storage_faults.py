"""Unforeseen storage faults (an exception that is not ``DatabaseUnavailable``) that pass never
fail a run and never stop a worker's heartbeat. (A write that keeps failing fails its own run:
``test_write_isolation.py``.)

Seen for real when Postgres restarts under load: asyncpg can hand out a pooled connection the
server terminated, and the next query raises ``InternalClientError`` ("cannot switch to state
12; another operation (2) is in progress"). Such a fault hits whichever call comes next, so the
Postgres restart test meets it only now and then; here it is injected deterministically, once,
into a real backend, with an in-process worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from stepwise import Client, Registry, Run, RunStatus, Worker, workflow
from stepwise.backends.base import Backend

LEASE = 1.0


class InjectedFault(Exception):
    """Stands for a driver error the backend did not translate into ``DatabaseUnavailable``."""


class Faulty:
    """A real backend whose method ``name`` raises ``InjectedFault`` on its first ``times``
    calls; everything else passes through."""

    def __init__(self, inner: Backend, name: str, times: int) -> None:
        self._inner, self._name, self.left = inner, name, times

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._inner, attr)
        if attr != self._name:
            return target

        async def faulty(*args: Any, **kwargs: Any) -> Any:
            if self.left:
                self.left -= 1
                raise InjectedFault(f"injected fault in {attr}")
            return await target(*args, **kwargs)

        return faulty


Execute = Callable[[Faulty, Callable[[], Awaitable[int]]], Awaitable[Run]]


@pytest.fixture
async def execute(backend_url: str) -> AsyncIterator[Execute]:
    """Runs a one-step workflow to its end on an in-process worker over a faulty backend."""
    async with Client.connect(backend_url) as client:

        async def run(faulty: Faulty, step: Callable[[], Awaitable[int]]) -> Run:
            registry = Registry()

            @workflow("one-step", registry=registry)
            async def one_step(ctx: Any) -> int:
                result: int = await ctx.step.run("only", step)
                return result

            worker = Worker(
                cast(Backend, faulty), registry, lease_seconds=LEASE, poll_interval=0.05
            )
            stop = asyncio.Event()
            serving = asyncio.create_task(worker.run(stop))
            try:
                started = await client.start(one_step)
                return await client.wait_finished(started.id, timeout=30)
            finally:
                stop.set()
                await serving

        yield run


async def test_unforeseen_write_fault_that_passes_is_written_again_at_once(
    backend: Backend, execute: Execute
) -> None:
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        return calls

    faulty = Faulty(backend, "write", times=1)
    run = await execute(faulty, step)
    assert faulty.left == 0
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.claims == 1  # never given up: the journal wrote the failed batch again
    assert run.output == 1  # the step ran once, and its result was stored


async def test_unforeseen_heartbeat_fault_does_not_stop_the_heartbeat(
    backend: Backend, execute: Execute
) -> None:
    calls = 0

    async def step() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(LEASE * 3)  # outlives the lease: only heartbeats keep it
        return calls

    faulty = Faulty(backend, "heartbeat", times=1)
    run = await execute(faulty, step)
    assert faulty.left == 0
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.claims == 1
    assert calls == 1
