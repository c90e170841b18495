"""Delayed start and paging through the client, on both backends: ``start(start_at=|delay=)``
keeps a run pending until then, ``list`` and ``steps`` page with opaque cursors that runs
started meanwhile never shift, ``count`` counts every page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepwise import Registry, RunStatus, workflow
from stepwise.errors import InvalidArgument
from tests.conftest import Engine

TIMEOUT = 30.0


async def test_a_delayed_run_is_pending_until_its_time_and_no_worker_takes_it_early(
    engine: Engine,
) -> None:
    @workflow("delayed", registry=engine.registry)
    async def delayed(ctx: Any) -> str:
        return "ran"

    before = datetime.now(UTC)
    later = await engine.client.start(delayed, delay=timedelta(hours=1))
    at = await engine.client.start(delayed, start_at=before + timedelta(hours=2))
    soon = await engine.client.start(delayed, delay=0.5)
    assert later.status is RunStatus.PENDING
    assert later.available_at >= before + timedelta(hours=1)
    assert at.available_at == before + timedelta(hours=2)

    stop = asyncio.Event()
    serving = asyncio.create_task(engine.worker().run(stop))
    try:
        assert await engine.client.wait(soon.id, timeout=TIMEOUT) == "ran"
    finally:
        stop.set()
        await serving
    finished = await engine.client.get(soon.id)
    assert finished.started_at is not None
    assert finished.started_at >= soon.available_at
    for run_id in (later.id, at.id):
        run = await engine.client.get(run_id)
        assert (run.status, run.claims) == (RunStatus.PENDING, 0)


async def test_start_at_and_delay_are_checked_before_anything_is_stored(engine: Engine) -> None:
    moment = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(InvalidArgument, match="start_at and delay cannot both be given"):
        await engine.client.start("wf", start_at=moment, delay=10)
    with pytest.raises(InvalidArgument, match="start_at must be timezone-aware"):
        await engine.client.start("wf", start_at=moment.replace(tzinfo=None))
    with pytest.raises(InvalidArgument, match="delay"):
        await engine.client.start("wf", delay=-1)
    with pytest.raises(InvalidArgument, match="delay"):
        await engine.client.start("wf", delay=float("nan"))
    assert await engine.client.count() == 0


async def test_list_pages_with_a_cursor_and_runs_started_meanwhile_never_shift_a_page(
    engine: Engine,
) -> None:
    started = [(await engine.client.start("paged", {"n": n})).id for n in range(7)]
    await engine.client.start("other")

    seen: list[str] = []
    page = await engine.client.list(workflow="paged", limit=3)
    while True:
        seen += [run.id for run in page]
        if page.next_cursor is None:
            break
        await engine.client.start("paged", {"n": "newer than every page"})
        page = await engine.client.list(workflow="paged", limit=3, cursor=page.next_cursor)
    assert seen == started[::-1]
    assert await engine.client.count(workflow="paged") == 7 + 2
    assert await engine.client.count() == 7 + 2 + 1
    assert await engine.client.count(status=RunStatus.SUCCEEDED) == 0
    assert await engine.client.count(workflow="paged", status=[RunStatus.PENDING]) == 9


async def test_steps_page_with_a_cursor(engine: Engine) -> None:
    @workflow("many-steps", registry=Registry())
    async def many(ctx: Any) -> int:
        for n in range(5):
            await ctx.step.run(f"step-{n}", lambda n=n: n)
        return 5

    run = await engine.run(many)
    keys: list[str] = []
    cursor = None
    while True:
        page = await engine.client.steps(run.id, limit=2, cursor=cursor)
        keys += [step.key for step in page]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert keys == [f"step-{n}" for n in range(5)]
    everything = await engine.client.steps(run.id)
    assert ([s.key for s in everything], everything.next_cursor) == (keys, None)


async def test_a_cursor_of_another_listing_or_garbage_is_refused(engine: Engine) -> None:
    for n in range(3):
        await engine.client.start("paged", {"n": n})
    runs = await engine.client.list(limit=1)
    assert runs.next_cursor is not None
    with pytest.raises(InvalidArgument, match="cursor is not a cursor of a page of steps"):
        await engine.client.steps(runs[0].id, cursor=runs.next_cursor)
    with pytest.raises(InvalidArgument, match="cursor is not a cursor of a page of runs"):
        await engine.client.list(cursor="not-a-cursor")
