"""Every worker sweeps deadlines: a run that waits past its deadline with nobody to execute it
is failed with ``DeadlineExceeded``, and a fault in the sweep stops neither the next sweep nor
the heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, cast

import pytest

from stepwise import Client, Registry, RunStatus, Worker, workflow
from stepwise.backends.base import Backend
from tests.robustness.test_storage_faults import Faulty

LEASE = 0.3


@pytest.fixture
async def client(backend_url: str) -> AsyncIterator[Client]:
    async with Client.connect(backend_url) as connected:
        yield connected


async def serve(worker: Worker, client: Client, run_id: str) -> RunStatus:
    """Serve with ``worker`` until run ``run_id`` finished; its final status."""
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    try:
        return (await client.wait_finished(run_id, timeout=30)).status
    finally:
        stop.set()
        await serving


async def test_a_worker_fails_a_waiting_run_whose_deadline_passed(client: Client) -> None:
    waiting = await client.start("nobody-serves-this", deadline=timedelta(seconds=0.1))
    worker = Worker(client, Registry(), lease_seconds=LEASE, poll_interval=0.05)

    assert await serve(worker, client, waiting.id) is RunStatus.FAILED
    error = (await client.get(waiting.id)).error
    assert error is not None
    assert error["type"] == "DeadlineExceeded"


async def test_a_fault_in_the_sweep_stops_neither_the_sweep_nor_the_heartbeat(
    client: Client,
) -> None:
    registry = Registry()
    calls = 0

    async def outlive_the_lease() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(LEASE * 4)  # only heartbeats keep the lease meanwhile
        return calls

    @workflow("held", registry=registry)
    async def held(ctx: Any) -> int:
        result: int = await ctx.step.run("long", outlive_the_lease)
        return result

    faulty = Faulty(client.backend, "expire_runs", times=2)
    worker = Worker(cast(Backend, faulty), registry, lease_seconds=LEASE, poll_interval=0.05)
    waiting = await client.start("nobody-serves-this", deadline=timedelta(seconds=0.1))
    running = await client.start(held)

    assert await serve(worker, client, waiting.id) is RunStatus.FAILED
    assert faulty.left == 0
    finished = await client.wait_finished(running.id, timeout=30)
    assert finished.status is RunStatus.SUCCEEDED, finished.error
    assert finished.claims == 1
    assert calls == 1
