"""Retention: a worker started with ``retention`` deletes the runs that finished longer ago than
that, with their steps, and nothing else: runs still pending or running stay, however old, and
so does a run that finished within the age. ``Client.prune`` does the same once, on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from stepwise import Client, InvalidArgument, Registry, RunStatus, Worker, workflow
from tests.backends.test_conformance import eventually

AGE = 1.0


@pytest.fixture
async def client(backend_url: str) -> AsyncIterator[Client]:
    async with Client.connect(backend_url) as connected:
        yield connected


def registry() -> Registry:
    flows = Registry()

    @workflow("kept-short", registry=flows)
    async def kept_short(ctx: object) -> str:
        return "done"

    return flows


async def finished_runs(client: Client, flows: Registry, count: int) -> list[str]:
    """``count`` runs of ``kept-short``, executed to success by a worker without retention."""
    ids = [(await client.start("kept-short")).id for _ in range(count)]
    stop = asyncio.Event()
    serving = asyncio.create_task(Worker(client, flows, poll_interval=0.05).run(stop))
    try:
        for run_id in ids:
            assert (await client.wait_finished(run_id, timeout=30)).status is RunStatus.SUCCEEDED
    finally:
        stop.set()
        await serving
    return ids


async def test_a_worker_with_retention_deletes_runs_finished_longer_ago(client: Client) -> None:
    flows = registry()
    old = await finished_runs(client, flows, 3)
    waiting = await client.start("nobody-serves-this")
    stop = asyncio.Event()
    worker = Worker(client, flows, poll_interval=0.05, retention=timedelta(seconds=AGE))
    serving = asyncio.create_task(worker.run(stop))
    try:

        async def pruned() -> bool:
            return all([await client.find(run_id) is None for run_id in old])

        await eventually(pruned, timeout=30)
        assert all([await client.steps(run_id) == [] for run_id in old])
        assert (await client.get(waiting.id)).status is RunStatus.PENDING
    finally:
        stop.set()
        await serving


async def test_prune_keeps_runs_that_finished_within_the_age(client: Client) -> None:
    [recent] = await finished_runs(client, registry(), 1)
    assert await client.prune(older_than=timedelta(hours=1)) == 0
    assert (await client.get(recent)).status is RunStatus.SUCCEEDED

    async def gone() -> bool:
        return await client.prune(older_than=0.05, batch_size=1) == 1

    await eventually(gone, timeout=30)
    assert await client.find(recent) is None


@pytest.mark.parametrize("age", [0, -1.0, float("nan"), timedelta(0)])
async def test_an_age_that_is_not_a_positive_duration_is_refused(
    client: Client, age: float | timedelta
) -> None:
    with pytest.raises(InvalidArgument, match="older_than"):
        await client.prune(older_than=age)
    with pytest.raises(InvalidArgument, match="retention"):
        Worker(client, Registry(), retention=age)
