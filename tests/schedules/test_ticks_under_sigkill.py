"""Exactly-once ticks under SIGKILL, with real worker processes (both backends).

Three workers serve a workflow scheduled every second. Each time a new tick's run appears, one
worker is SIGKILLed (in turn) and a fresh one started in its place, for ``KILLS`` ticks. Then
the schedule is paused, and the database must hold exactly one run per tick, every second
from the first tick to the last (no twin, no gap), each finished with its tick as
``ctx.scheduled_at``. A kill can land anywhere, mid-fire included: firing is one transaction,
so a dead worker leaves the tick either fired or still due for the others.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from harness.workers import Proc, Procs, async_wait_until
from stepwise import Client, Run, RunStatus

FLOWS = Path(__file__).with_name("flows.py")
WORKERS = 3
KILLS = 12
LEASE = 1.0
TIMEOUT = 60.0

pytestmark = pytest.mark.slow


async def _runs(client: Client) -> list[Run]:
    return await client.list(workflow="tick", limit=1000)


async def test_every_tick_fires_exactly_once_while_workers_are_killed(
    procs: Procs, backend_url: str
) -> None:
    def spawn(n: int) -> Proc:
        return procs.worker(FLOWS, backend_url, lease=LEASE, name=f"worker-{n}")

    slots = [spawn(n) for n in range(WORKERS)]
    async with Client.connect(backend_url) as client:
        seen = 0
        for kill in range(KILLS):

            async def more(than: int = seen) -> int | None:
                count = len(await _runs(client))
                return count if count > than else None

            seen = await async_wait_until(more, TIMEOUT, lambda: f"a new tick\n{procs.tails()}")
            victim = kill % WORKERS
            slots[victim].kill()
            slots[victim] = spawn(WORKERS + kill)
        await client.schedules.pause("tick")

        async def all_finished() -> list[Run] | None:
            runs = await _runs(client)
            return runs if all(run.finished for run in runs) else None

        runs = await async_wait_until(all_finished, TIMEOUT, lambda: f"runs end\n{procs.tails()}")

    ticks = sorted(run.scheduled_at for run in runs if run.scheduled_at is not None)
    assert len(ticks) == len(runs) >= KILLS
    first = ticks[0]
    assert ticks == [first + timedelta(seconds=n) for n in range(len(ticks))], "a twin or a gap"
    for run in runs:
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert run.scheduled_at is not None
        assert run.output == {"input": {"source": "code"}, "tick": run.scheduled_at.isoformat()}
