"""Chaos that always hits: a SIGKILL for a worker process caught running a step.

The kills must land on runs in flight, or a chaos test proves nothing. So a victim is killed
only once it is known to hold a run: it is frozen (SIGSTOP), and killed if the ledger shows a
step of its that started and did not return, else thawed and checked again a moment later; the
oldest worker that qualifies is taken.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from harness.workers import Proc, async_wait_until, wait_until
from tests.robustness.flows import read_ledger

HOLD_TIMEOUT = 60.0
"""How long a kill may wait for a worker that runs a step: runs arrive every tick, so far
longer than it takes."""


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


async def kill_one_holding_a_run(slots: Sequence[Proc], ledger: Path) -> Proc:
    """SIGKILL the oldest of ``slots`` that runs a step, caught frozen so the step cannot end
    between the check and the kill; returns it."""

    async def frozen_holder() -> Proc | None:
        for proc in slots:
            proc.pause()
            wait_until(functools.partial(_stopped, proc), 10, f"{proc.name} is stopped")
            if _running_a_step(proc, ledger):
                return proc
            proc.resume()
        return None

    victim = await async_wait_until(frozen_holder, HOLD_TIMEOUT, "a worker runs a step")
    victim.kill()
    return victim
