"""The deadline sweep: fail runs whose deadline passed while nobody could execute them.

A run being executed meets its own deadline inside the worker that holds it; a run that waits
(no worker knows its workflow, every worker is busy, or it waits for a retry) has no one to
notice, so every worker sweeps now and then: one query, idempotent, safe to run from many
workers at once. It is not lease renewal and shares no state with it, only the clock.
"""

from __future__ import annotations

import asyncio
import logging

from stepwise.backends.base import Backend
from stepwise.errors import DatabaseDamaged, DatabaseUnavailable
from stepwise.worker import periodic

log = logging.getLogger(__name__)

LEASES_PER_SWEEP = 2
"""Sweep every this many lease lengths: a deadline is met within about two leases."""


class DeadlineSweep:
    def __init__(self, backend: Backend, lease_seconds: float) -> None:
        self._backend = backend
        self.interval = max(lease_seconds * LEASES_PER_SWEEP, 0.1)

    async def run(self, stop: asyncio.Event) -> None:
        await self.sweep()
        await periodic.every(self.interval, stop, self.sweep)

    async def sweep(self) -> None:
        try:
            expired = await self._backend.expire_runs()
        except (DatabaseUnavailable, DatabaseDamaged) as exc:
            log.warning("deadline sweep failed: %s", exc)
            return
        except Exception:
            # Unforeseen (a driver fault): the next sweep tries again.
            log.exception("deadline sweep failed")
            return
        if expired:
            log.info("failed %d run(s) whose deadline passed", expired)
