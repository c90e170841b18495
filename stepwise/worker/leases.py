"""Lease renewal: one heartbeat query per interval renews every run this worker holds.

The heartbeat also learns which runs were lost — canceled by a user or claimed by another
worker after this one stalled past its lease — and hands them to ``lose``, which stops them
at once; the leases it did renew go to ``renewed``, with the moment the renewal was sent
(what a holder's own lease clock counts from: ``core.lease``). It knows nothing else of the
worker: what it renews and whom it tells are given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from stepwise.backends.base import Backend
from stepwise.errors import DatabaseDamaged, DatabaseUnavailable
from stepwise.worker import periodic

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews the leases of the runs ``held()`` names, three times per lease."""

    def __init__(
        self,
        backend: Backend,
        worker_id: str,
        lease_seconds: float,
        *,
        held: Callable[[], Sequence[str]],
        lose: Callable[[set[str]], None],
        renewed: Callable[[set[str], float], None],
    ) -> None:
        self._backend = backend
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._held = held
        self._lose = lose
        self._renewed = renewed
        self.interval = max(lease_seconds / 3, 0.05)

    async def run(self, stop: asyncio.Event) -> None:
        await periodic.every(self.interval, stop, self.beat)

    async def beat(self) -> None:
        held = self._held()
        sent_at = time.monotonic()
        try:
            lost = await self._backend.heartbeat(self._worker_id, held, self._lease_seconds)
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
        self._renewed(set(held) - lost, sent_at)
        if lost:
            self._lose(lost)
