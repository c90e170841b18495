"""Schedules through the client and in-process workers (both backends): the calls and what they
refuse; a worker fires each tick once, with the schedule's input and the tick as
``ctx.scheduled_at``; a schedule declared with ``@workflow(schedule=…)`` is saved by the workers
that serve it, and stays paused across their restarts; missed ticks follow the catch-up
policy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from harness.workers import async_wait_until
from stepwise import Client, Run, RunStatus, ScheduleNotFound, WorkflowContext, workflow
from stepwise.backends.base import NewSchedule, RunFilter
from stepwise.core.registry import Registry
from stepwise.errors import DefinitionError, InvalidArgument, InvalidInput
from stepwise.worker.schedules import Ticker
from tests.conftest import Engine

TIMEOUT = 30.0


class Report(BaseModel):
    to: str


def _define(registry: Registry, **schedule: Any) -> None:
    @workflow("report", input=Report, registry=registry, **schedule)
    async def report(ctx: WorkflowContext[Report]) -> dict[str, Any]:
        assert ctx.scheduled_at is not None
        return {"to": ctx.input.to, "tick": ctx.scheduled_at.isoformat()}


@contextlib.asynccontextmanager
async def serving(engine: Engine, count: int = 1) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(engine.worker().run(stop)) for _ in range(count)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _finished_runs(client: Client, at_least: int) -> list[Run] | None:
    runs = await client.list(workflow="report", status=RunStatus.SUCCEEDED, limit=1000)
    return runs if len(runs) >= at_least else None


def _until(predicate: Callable[[], Awaitable[Any]], what: str) -> Awaitable[Any]:
    return async_wait_until(predicate, TIMEOUT, what)


async def test_add_list_pause_resume_delete(engine: Engine) -> None:
    _define(engine.registry)
    schedules = Client(engine.client.backend, registry=engine.registry).schedules
    added = await schedules.add(
        "weekly", "0 9 * * 1", "report", {"to": "ops"}, timezone="Europe/Paris"
    )
    assert (added.cron, added.timezone, added.input, added.paused) == (
        "0 9 * * 1", "Europe/Paris", {"to": "ops"}, False,
    )  # fmt: skip
    assert added.next_fire_at > datetime.now(UTC)
    assert [s.name for s in await schedules.list()] == ["weekly"]

    paused = await schedules.pause("weekly")
    assert paused.paused
    assert (await schedules.get("weekly")).paused
    resumed = await schedules.resume("weekly")
    assert not resumed.paused

    await schedules.delete("weekly")
    assert await schedules.list() == []
    for call in (schedules.get, schedules.pause, schedules.resume, schedules.delete):
        with pytest.raises(ScheduleNotFound, match="no schedule named 'weekly'"):
            await call("weekly")


async def test_bad_schedules_are_refused_before_anything_is_stored(engine: Engine) -> None:
    _define(engine.registry)
    schedules = Client(engine.client.backend, registry=engine.registry).schedules
    with pytest.raises(InvalidArgument, match="cron expression"):
        await schedules.add("s", "every day", "report", {"to": "x"})
    with pytest.raises(InvalidArgument, match="time zone"):
        await schedules.add("s", "* * * * *", "report", {"to": "x"}, timezone="Nowhere/City")
    with pytest.raises(InvalidArgument, match="schedule name"):
        await schedules.add("bad name", "* * * * *", "report", {"to": "x"})
    with pytest.raises(InvalidInput, match="Report"):
        await schedules.add("s", "* * * * *", "report", {"wrong": "x"})
    with pytest.raises(InvalidArgument, match="starting_deadline"):
        await schedules.add("s", "* * * * *", "report", {"to": "x"}, starting_deadline=-1)
    assert await schedules.list() == []


def test_a_bad_declared_schedule_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError, match="cron expression"):
        _define(Registry(), schedule="nope")
    with pytest.raises(DefinitionError, match="schedule_input"):
        _define(Registry(), schedule="* * * * *", schedule_input={"wrong": 1})


async def test_workers_fire_each_tick_once_with_the_input_and_the_tick(engine: Engine) -> None:
    _define(engine.registry)
    await engine.client.schedules.add("every-second", "* * * * * *", "report", {"to": "ops"})
    async with serving(engine, count=3):
        runs = await _until(lambda: _finished_runs(engine.client, 3), "three ticks ran")
    ticks = sorted(run.scheduled_at for run in runs if run.scheduled_at is not None)
    assert len(ticks) == len(runs), "every run has its tick"
    assert ticks == [ticks[0] + timedelta(seconds=n) for n in range(len(ticks))], "no gap, no twin"
    for run in runs:
        assert run.scheduled_at is not None
        assert run.input == {"to": "ops"}
        assert run.output == {"to": "ops", "tick": run.scheduled_at.isoformat()}
        assert run.idempotency_key == f"schedule:every-second:{run.scheduled_at:%Y-%m-%dT%H:%M:%SZ}"


async def test_a_declared_schedule_is_saved_by_workers_and_stays_paused(engine: Engine) -> None:
    _define(engine.registry, schedule="* * * * * *", schedule_input={"to": "code"})
    async with serving(engine):
        runs = await _until(lambda: _finished_runs(engine.client, 1), "a declared tick ran")
    assert runs[0].input == {"to": "code"}
    paused = await engine.client.schedules.pause("report")
    assert (paused.workflow, paused.cron) == ("report", "* * * * * *")

    await Ticker(engine.client.backend, engine.registry, interval=1.0).save_declared()
    assert (await engine.client.schedules.get("report")).paused, "a restart keeps the pause"


async def test_missed_ticks_within_the_deadline_fire_and_older_ones_are_skipped(
    engine: Engine,
) -> None:
    backend = engine.client.backend
    now = datetime.now(UTC).replace(microsecond=0)
    await backend.save_schedule(
        NewSchedule(
            name="catch-up",
            workflow="report",
            cron="*/10 * * * * *",
            timezone="UTC",
            input='{"to": "late"}',
            starting_deadline=35.0,
            next_fire_at=now - timedelta(minutes=10),
        )
    )
    ticker = Ticker(backend, engine.registry, interval=1.0)
    started = await ticker.fire_due()
    runs = await backend.list_runs(RunFilter(workflow="report"))
    assert started == len(runs)
    assert len(runs) in (3, 4), "the ticks of the last 35 seconds, every 10 seconds"
    oldest = min(run.scheduled_at for run in runs if run.scheduled_at is not None)
    assert now - timedelta(seconds=35) <= oldest <= now - timedelta(seconds=25)
    schedule = await engine.client.schedules.get("catch-up")
    assert schedule.next_fire_at > datetime.now(UTC) - timedelta(seconds=1)
    assert await ticker.fire_due() == 0


async def test_the_one_run_worker_neither_saves_nor_fires_schedules(engine: Engine) -> None:
    """``stepwise run`` and ``stepwise.testing`` run one workflow: a schedule declared in the
    same file must not start other runs on the side."""

    @workflow("report", registry=engine.registry, schedule="* * * * * *")
    async def report(ctx: WorkflowContext[Any]) -> str:
        return "once"

    run = await engine.run(report)
    assert run.output == "once"
    assert await engine.client.schedules.list() == []
    assert [r.id for r in await engine.client.list(workflow="report")] == [run.id]


async def test_a_schedule_a_worker_cannot_read_does_not_stop_the_others(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    backend = engine.client.backend
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    for name, timezone in (("a-unreadable", "Not/AZone"), ("b-fine", "UTC")):
        await backend.save_schedule(
            NewSchedule(name, "report", "* * * * * *", timezone, "null", 60.0, due)
        )
    ticker = Ticker(backend, engine.registry, interval=1.0)
    assert await ticker.fire_due() >= 1
    runs = await backend.list_runs(RunFilter(workflow="report"))
    assert {run.idempotency_key.split(":")[1] for run in runs if run.idempotency_key} == {"b-fine"}
    assert "schedule a-unreadable: cannot compute its ticks" in caplog.text
