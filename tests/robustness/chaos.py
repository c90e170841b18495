"""Chaos that always hits: a SIGKILL for a worker process caught running a step.

The kills must land on runs in flight, or a chaos test proves nothing. So a victim is killed
only once it is known to hold a run: it is frozen (SIGSTOP), and killed if the ledger shows a
step of its that started and did not return, else thawed and checked again a moment later; the
oldest worker that qualifies is taken. When no run is pending or running (the workers drained
every run that had arrived), there is nothing to hit, and no one is killed.

``WorkerPool`` holds the workers a chaos test kills and replaces, so the test states only its
workload.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path

from harness.workers import Proc, Procs, async_wait_until, wait_until
from stepwise import Client, RunStatus
from tests.robustness.flows import read_ledger

HOLD_TIMEOUT = 60.0
"""How long a kill may wait for a worker that runs a step while runs are pending or running:
far longer than a claim takes, even of a run whose holder died and whose lease must expire."""
IN_FLIGHT = [RunStatus.PENDING, RunStatus.RUNNING]


def _stopped(proc: Proc) -> bool:
    """Whether ``proc`` is stopped (state T), so it cannot finish a step until thawed."""
    stat = Path(f"/proc/{proc.pid}/stat").read_text(encoding="ascii")
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _running_a_step(proc: Proc, ledger: Path) -> bool:
    """Whether a step of ``proc``'s started and has not returned (its run is held by it)."""
    entries = read_ledger(ledger)
    returned = {e.execution for e in entries if e.event == "done"}
    return any(
        e.event == "start" and e.pid == proc.pid and e.execution not in returned for e in entries
    )


async def kill_one_holding_a_run(
    slots: Sequence[Proc], ledger: Path, client: Client
) -> Proc | None:
    """SIGKILL the oldest of ``slots`` that runs a step, caught frozen so the step cannot end
    between the check and the kill, and return it; None if no run is pending or running."""

    async def frozen_holder_or_idle() -> tuple[Proc | None] | None:
        for proc in slots:
            proc.pause()
            wait_until(functools.partial(_stopped, proc), 10, f"{proc.name} is stopped")
            if _running_a_step(proc, ledger):
                return (proc,)
            proc.resume()
        if not await client.count(status=IN_FLIGHT):
            return (None,)
        return None

    (victim,) = await async_wait_until(
        frozen_holder_or_idle, HOLD_TIMEOUT, "a worker runs a step, or no run is in flight"
    )
    if victim is not None:
        victim.kill()
    return victim


class WorkerPool:
    """Worker processes serving ``app`` on the database at ``url`` (``client``'s), each step
    execution written to ``ledger``: the chaos kills one that holds a run and starts a fresh one
    in its place, so the pool keeps its size and a survivor (or the newcomer) must claim the
    victim's runs again."""

    def __init__(
        self,
        procs: Procs,
        app: Path,
        url: str,
        client: Client,
        ledger: Path,
        *,
        lease: float,
        concurrency: int,
        args: Sequence[str] = (),
    ) -> None:
        self._procs, self._app, self._url = procs, app, url
        self._client, self._ledger = client, ledger
        self._lease, self._concurrency, self._args = lease, concurrency, args
        self.live: list[Proc] = []
        self.spawned = 0
        """How many workers the pool started, replacements included."""
        self.killed: dict[int, float] = {}
        """The pid of every worker killed, with the wall-clock time of its kill."""

    def start(self, count: int = 1) -> None:
        """Start ``count`` workers (named w1, w2, ... in the order they start)."""
        for _ in range(count):
            self.spawned += 1
            self.live.append(
                self._procs.worker(
                    self._app,
                    self._url,
                    lease=self._lease,
                    concurrency=self._concurrency,
                    name=f"w{self.spawned}",
                    args=self._args,
                )
            )

    async def kill_one_holding_a_run(self) -> Proc | None:
        """SIGKILL the oldest live worker that runs a step and start a replacement; return the
        victim, or None (killing no one) when no run is pending or running."""
        victim = await kill_one_holding_a_run(self.live, self._ledger, self._client)
        if victim is not None:
            self.killed[victim.pid] = time.time()
            self.live.remove(victim)
            self.start()
        return victim
