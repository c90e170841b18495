"""Lease renewal: one heartbeat query per interval renews every run this worker holds.

The heartbeat also learns which runs were lost — canceled by a user or claimed by another
worker after this one stalled past its lease — and stops them at once, and it fails runs
whose deadline passed while nobody could execute them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from stepwise.errors import DatabaseDamaged, DatabaseUnavailable

if TYPE_CHECKING:
    from stepwise.worker.worker import Worker

log = logging.getLogger(__name__)

EXPIRE_EVERY = 6
"""Run the deadline sweep every this many heartbeats."""


class Heartbeat:
    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.interval = max(worker.lease_seconds / 3, 0.05)

    async def run(self, stop: asyncio.Event) -> None:
        beats = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            await self.beat(sweep=beats % EXPIRE_EVERY == 0)
            beats += 1

    async def beat(self, *, sweep: bool = False) -> None:
        worker = self._worker
        try:
            lost = await worker.backend.heartbeat(
                worker.id, worker.held_tokens, worker.lease_seconds
            )
            if sweep:
                expired = await worker.backend.expire_runs()
                if expired:
                    log.info("failed %d run(s) whose deadline passed", expired)
        except (DatabaseUnavailable, DatabaseDamaged) as exc:
            # A damaged file also ends the claim loop, and with it the worker, in one line.
            log.warning("heartbeat failed (leases not renewed): %s", exc)
            return
        except Exception:
            # Unforeseen (say, a driver fault after a database restart): the next beat tries
            # again. Letting it end the heartbeat would let every lease this worker holds run
            # out while the worker goes on executing, and claiming, runs it cannot keep.
            log.exception("heartbeat failed (leases not renewed)")
            return
        if lost:
            worker.lose(lost)
