"""Schedules in storage (conformance, both backends): saving keeps the pause state and the next
tick unless the timetable changed; resuming skips the ticks due while paused; a tick fires once
however many callers race for it, and never without its run."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

from stepwise.backends.base import Backend, NewSchedule, RunFilter, ScheduleTick
from tests.backends.conftest import BackendFactory

WF = "scheduled-wf"
SECOND = timedelta(seconds=1)


def _whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def new_schedule(
    name: str = "every-second",
    *,
    cron: str = "* * * * * *",
    next_fire_at: datetime | None = None,
    input: object = None,  # noqa: A002
) -> NewSchedule:
    return NewSchedule(
        name=name,
        workflow=WF,
        cron=cron,
        timezone="UTC",
        input=json.dumps(input),
        starting_deadline=300.0,
        next_fire_at=next_fire_at or _whole_second(datetime.now(UTC)) + SECOND,
    )


def tick(name: str, due: datetime, *, fire: bool = True) -> ScheduleTick:
    return ScheduleTick(
        name=name,
        due=due,
        next_fire_at=due + SECOND,
        fire=due if fire else None,
        run_id=str(uuid.uuid4()),
        idempotency_key=f"schedule:{name}:{due.isoformat()}",
        version="v1",
    )


async def test_save_creates_then_updates_in_place(backend: Backend) -> None:
    first = await backend.save_schedule(new_schedule(input={"n": 1}))
    assert first.paused is False
    assert json.loads(first.input) == {"n": 1}
    assert await backend.pause_schedule(first.name, True, first.next_fire_at) is not None

    later = first.next_fire_at + timedelta(hours=1)
    same_timetable = await backend.save_schedule(new_schedule(input={"n": 2}, next_fire_at=later))
    assert same_timetable.paused is True, "saving again keeps the pause state"
    assert same_timetable.next_fire_at == first.next_fire_at, "and the next tick"
    assert json.loads(same_timetable.input) == {"n": 2}

    new_timetable = await backend.save_schedule(
        new_schedule(cron="*/2 * * * * *", next_fire_at=later)
    )
    assert new_timetable.next_fire_at == later, "a new timetable starts from its own next tick"
    assert [s.name for s in await backend.list_schedules()] == [first.name]
    assert await backend.get_schedule(first.name) == new_timetable
    assert await backend.get_schedule("nope") is None


async def test_resuming_moves_the_next_tick_and_pausing_keeps_it(backend: Backend) -> None:
    past = _whole_second(datetime.now(UTC)) - timedelta(minutes=5)
    saved = await backend.save_schedule(new_schedule(next_fire_at=past))
    assert [s.name for s in await backend.due_schedules(10)] == [saved.name]

    future = past + timedelta(minutes=10)
    paused = await backend.pause_schedule(saved.name, True, future)
    assert paused is not None
    assert (paused.paused, paused.next_fire_at) == (True, past)
    assert await backend.due_schedules(10) == []
    assert await backend.next_tick_at() is None

    resumed = await backend.pause_schedule(saved.name, False, future)
    assert resumed is not None
    assert (resumed.paused, resumed.next_fire_at) == (False, future)
    assert await backend.next_tick_at() == future
    again = await backend.pause_schedule(saved.name, False, future + SECOND)
    assert again is not None
    assert again.next_fire_at == future, "resuming a running one is a no-op"

    assert await backend.pause_schedule("nope", True, future) is None
    assert await backend.delete_schedule(saved.name)
    assert not await backend.delete_schedule(saved.name)


async def test_a_tick_fires_once_with_its_run(backend: Backend) -> None:
    due = _whole_second(datetime.now(UTC)) - SECOND
    saved = await backend.save_schedule(new_schedule(next_fire_at=due, input={"k": "v"}))

    first = tick(saved.name, due)
    run_id = await backend.fire_schedule(first)
    assert run_id == first.run_id
    assert await backend.fire_schedule(tick(saved.name, due)) is None, "the tick moved on"

    run = await backend.get_run(run_id)
    assert run is not None
    assert (run.workflow, run.version, run.scheduled_at) == (WF, "v1", due)
    assert json.loads(run.input) == {"k": "v"}
    assert run.idempotency_key == first.idempotency_key
    after = await backend.get_schedule(saved.name)
    assert after is not None
    assert (after.next_fire_at, after.last_fired_at) == (due + SECOND, due)


async def test_a_skipped_tick_advances_without_a_run(backend: Backend) -> None:
    due = _whole_second(datetime.now(UTC)) - SECOND
    saved = await backend.save_schedule(new_schedule(next_fire_at=due))
    assert await backend.fire_schedule(tick(saved.name, due, fire=False)) is None
    after = await backend.get_schedule(saved.name)
    assert after is not None
    assert (after.next_fire_at, after.last_fired_at) == (due + SECOND, None)
    assert await backend.list_runs(RunFilter(workflow=WF)) == []


async def test_a_paused_schedule_does_not_fire(backend: Backend) -> None:
    due = _whole_second(datetime.now(UTC)) - SECOND
    saved = await backend.save_schedule(new_schedule(next_fire_at=due))
    await backend.pause_schedule(saved.name, True, due)
    assert await backend.fire_schedule(tick(saved.name, due)) is None
    assert await backend.list_runs(RunFilter(workflow=WF)) == []


async def test_racing_callers_fire_each_tick_exactly_once(backend_factory: BackendFactory) -> None:
    """Eight backends (as eight worker processes would) race for the same 20 ticks."""
    racers = [await backend_factory() for _ in range(8)]
    start = _whole_second(datetime.now(UTC)) - timedelta(seconds=20)
    saved = await racers[0].save_schedule(new_schedule(next_fire_at=start))

    async def race(backend: Backend) -> list[str]:
        started = []
        while True:
            due = await backend.due_schedules(10)
            current = await backend.get_schedule(saved.name)
            assert current is not None
            if not due or current.next_fire_at >= start + timedelta(seconds=20):
                return started
            run_id = await backend.fire_schedule(tick(saved.name, current.next_fire_at))
            if run_id is not None:
                started.append(run_id)

    started = [run for runs in await asyncio.gather(*map(race, racers)) for run in runs]
    runs = await racers[0].list_runs(RunFilter(workflow=WF, limit=1000))
    assert len(started) == len(runs) == 20
    assert sorted(run.scheduled_at for run in runs if run.scheduled_at) == [
        start + n * SECOND for n in range(20)
    ]
