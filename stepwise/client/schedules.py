"""Schedules managed at run time: ``client.schedules.add/get/list/pause/resume/delete``.

A schedule is a row in the database (name, cron, time zone, workflow, input); workers fire its
ticks (``stepwise.worker.schedules``). A workflow declared with ``@workflow(name,
schedule=…)`` has a schedule of the same name that every worker serving it saves when it
starts (``defined``); the same calls pause, resume or delete it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from stepwise.backends.base import Backend, NewSchedule, ScheduleRecord
from stepwise.core import codec, limits
from stepwise.core.cron import DEFAULT_STARTING_DEADLINE, Cron
from stepwise.core.cron import parse as parse_cron
from stepwise.core.definitions import NAME_RULE, WorkflowDefinition, checked_name, is_valid_name
from stepwise.errors import InvalidArgument, ScheduleNotFound

StoredInput = Callable[[str, Any], str]
"""(workflow name, input) → the JSON text a run of it stores, validated (``Client``'s rule)."""


@dataclass(frozen=True, slots=True)
class Schedule(ScheduleRecord[Any]):
    """A schedule as the client returns it: ``input`` decoded from JSON."""


def _decoded(record: ScheduleRecord) -> Schedule:
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    values["input"] = codec.loads(record.input)
    return Schedule(**values)


def _checked_deadline(seconds: float) -> float:
    return limits.seconds(seconds, "starting_deadline")


def defined(definition: WorkflowDefinition) -> NewSchedule | None:
    """The schedule ``@workflow(name, schedule=…)`` declares, named after the workflow."""
    if definition.schedule is None:
        return None
    return NewSchedule(
        name=definition.name,
        workflow=definition.name,
        cron=definition.schedule.expression,
        timezone=definition.schedule.timezone,
        input=codec.dumps(definition.validate_input(definition.schedule_input)),
        starting_deadline=DEFAULT_STARTING_DEADLINE,
        next_fire_at=definition.schedule.next_after(datetime.now(UTC)),
    )


class Schedules:
    """``client.schedules``: every call is one database call; see the module docstring."""

    def __init__(self, backend: Backend, stored_input: StoredInput) -> None:
        self._backend = backend
        self._stored_input = stored_input

    async def add(
        self,
        name: str,
        cron: str,
        workflow: str | WorkflowDefinition,
        input: Any = None,  # noqa: A002 - mirrors Client.start
        *,
        timezone: str = "UTC",
        starting_deadline: float = DEFAULT_STARTING_DEADLINE,
    ) -> Schedule:
        """Start a run of ``workflow`` with ``input`` at every tick of ``cron`` read
        in ``timezone``; the first tick is the first one after now. An existing schedule of
        that name is updated in place: it stays paused if it was, and keeps its next tick unless
        the expression or the time zone changed. Everything is checked before anything is
        stored (``InvalidArgument``, ``InvalidInput``)."""
        if not is_valid_name(name):
            raise InvalidArgument("schedule name", f"{limits.shown(name)} is invalid: {NAME_RULE}")
        workflow_name = workflow.name if isinstance(workflow, WorkflowDefinition) else workflow
        timetable = parse_cron(cron, timezone)
        new = NewSchedule(
            name=name,
            workflow=checked_name(workflow_name),
            cron=timetable.expression,
            timezone=timetable.timezone,
            input=self._stored_input(workflow_name, input),
            starting_deadline=_checked_deadline(starting_deadline),
            next_fire_at=timetable.next_after(datetime.now(UTC)),
        )
        return _decoded(await self._backend.save_schedule(new))

    async def get(self, name: str) -> Schedule:
        record = await self._backend.get_schedule(name)
        if record is None:
            raise ScheduleNotFound(name)
        return _decoded(record)

    async def list(self) -> list[Schedule]:
        """Every schedule, by name."""
        return [_decoded(record) for record in await self._backend.list_schedules()]

    async def pause(self, name: str) -> Schedule:
        """No tick fires until ``resume``; runs already started go on."""
        return await self._set_paused(name, paused=True)

    async def resume(self, name: str) -> Schedule:
        """Fire again from the first tick after now: ticks due while paused never fire."""
        return await self._set_paused(name, paused=False)

    async def delete(self, name: str) -> None:
        """Remove the schedule; the runs it started stay. A schedule declared in code comes
        back when a worker serving its workflow starts: pause it to stop it for good."""
        if not await self._backend.delete_schedule(name):
            raise ScheduleNotFound(name)

    async def _set_paused(self, name: str, *, paused: bool) -> Schedule:
        current = await self.get(name)
        timetable = Cron(current.cron, current.timezone)
        record = await self._backend.pause_schedule(
            name, paused, timetable.next_after(datetime.now(UTC))
        )
        if record is None:
            raise ScheduleNotFound(name)
        return _decoded(record)
