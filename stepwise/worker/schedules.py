"""The schedule ticker: every worker fires the ticks of every schedule that is due.

Why every worker, and why that is safe: no worker is special, so a tick fires as long as any
worker lives. Firing a tick is one backend call (``fire_schedule``) that advances the
schedule's ``next_fire_at`` only if it still holds the tick this worker read, and starts the
tick's run in the same transaction (idempotency key ``schedule:<name>:<tick>``): of the
workers that race for a tick exactly one starts its run, and a worker killed mid-call leaves
either both writes or neither, so the tick is still due for the others. Which ticks fire when
some were missed is ``core.cron.catch_up``.

The ticker sleeps until the earliest next tick, at most ``interval`` seconds (schedules added
by other processes are seen within that).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from stepwise.backends.base import Backend, ScheduleRecord, ScheduleTick
from stepwise.client import schedules
from stepwise.core import cron
from stepwise.core.registry import Registry
from stepwise.errors import DatabaseDamaged, DatabaseUnavailable

log = logging.getLogger(__name__)

BATCH = 100
"""Due schedules read per query."""
MAX_ROUNDS = 100
"""Queries per wake-up: a long catch-up goes on after a pause instead of hogging the loop."""


class Ticker:
    def __init__(self, backend: Backend, registry: Registry, interval: float) -> None:
        self._backend = backend
        self._registry = registry
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        """Save the schedules the registry's workflows declare, then fire ticks until ``stop``."""
        saved = False
        while not stop.is_set():
            try:
                if not saved:
                    await self.save_declared()
                    saved = True
                await self.fire_due()
                delay = await self._until_next_tick()
            except (DatabaseUnavailable, DatabaseDamaged) as exc:
                log.warning("schedule ticker: %s", exc)
                delay = self.interval
            except Exception:
                # Unforeseen (a driver fault): the next round tries again.
                log.exception("schedule ticker failed")
                delay = self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def save_declared(self) -> None:
        for name in self._registry.names():
            new = schedules.defined(self._registry.get(name))
            if new is not None:
                await self._backend.save_schedule(new)

    async def fire_due(self) -> int:
        """Fire (or skip, per the catch-up policy) every due tick; how many runs it started.
        A schedule this worker cannot read (a time zone its tzdata lacks) is logged and left
        to the others."""
        started = 0
        unreadable: set[str] = set()
        for _ in range(MAX_ROUNDS):
            due = [s for s in await self._backend.due_schedules(BATCH) if s.name not in unreadable]
            if not due:
                break
            now = datetime.now(UTC)
            for schedule in due:
                try:
                    timetable = cron.Cron(schedule.cron, schedule.timezone)
                    step = cron.catch_up(
                        timetable, schedule.next_fire_at, now, schedule.starting_deadline
                    )
                except Exception:
                    log.exception("schedule %s: cannot compute its ticks", schedule.name)
                    unreadable.add(schedule.name)
                    continue
                started += await self._fire(schedule, step)
        return started

    async def _fire(self, schedule: ScheduleRecord, step: cron.Step) -> int:
        if step.fire != schedule.next_fire_at:
            log.warning(
                "schedule %s: skipped the ticks from %s, more than %gs late",
                schedule.name,
                cron.tick_text(schedule.next_fire_at),
                schedule.starting_deadline,
            )
        fired = step.fire or schedule.next_fire_at
        definition = (
            self._registry.get(schedule.workflow) if schedule.workflow in self._registry else None
        )
        run_id = await self._backend.fire_schedule(
            ScheduleTick(
                name=schedule.name,
                due=schedule.next_fire_at,
                next_fire_at=step.next_fire_at,
                fire=step.fire,
                run_id=str(uuid.uuid4()),
                idempotency_key=f"schedule:{schedule.name}:{cron.tick_text(fired)}",
                version=None if definition is None else definition.version,
            )
        )
        if run_id is None:
            return 0
        log.info(
            "schedule %s: tick %s started run %s", schedule.name, cron.tick_text(fired), run_id
        )
        return 1

    async def _until_next_tick(self) -> float:
        """Seconds until the earliest next tick, at most ``interval``; a full ``interval`` when
        one is due already: this round left it (unreadable, or a catch-up past
        ``MAX_ROUNDS``), and asking again at once would spin."""
        moment = await self._backend.next_tick_at()
        left = self.interval if moment is None else (moment - datetime.now(UTC)).total_seconds()
        return self.interval if left <= 0 else min(left, self.interval)
