"""Retention: every worker deletes the runs that finished longer ago than an age, now and then.

Off by default: deleting history cannot be undone, and how long finished runs must stay
(audits, debugging, a retry days later) is the operator's decision, not a default's. When it is
on, each worker prunes once at start and then every tenth of the age (at least every second, at
most every hour), so a run outlives its age by at most about a tenth of it. The deletes go in
small batches that skip rows someone else holds (``Client.prune``): workers pruning at once
share the work, and claims never wait for them.
"""

from __future__ import annotations

import asyncio
import logging

from stepwise.client.client import Client
from stepwise.errors import DatabaseDamaged, DatabaseUnavailable
from stepwise.worker import periodic

log = logging.getLogger(__name__)

MIN_INTERVAL = 1.0
MAX_INTERVAL = 3600.0


class Retention:
    """Prunes through ``client`` the runs finished over ``older_than`` seconds ago; None: off."""

    def __init__(self, client: Client, older_than: float | None) -> None:
        self._client = client
        self.older_than = older_than
        self.interval = min(max((older_than or 0.0) / 10, MIN_INTERVAL), MAX_INTERVAL)

    async def run(self, stop: asyncio.Event) -> None:
        if self.older_than is None:
            return
        await self.prune()
        await periodic.every(self.interval, stop, self.prune)

    async def prune(self) -> None:
        assert self.older_than is not None
        try:
            pruned = await self._client.prune(older_than=self.older_than)
        except (DatabaseUnavailable, DatabaseDamaged) as exc:
            log.warning("pruning finished runs failed: %s", exc)
            return
        except Exception:
            # Unforeseen (a driver fault): the next round tries again.
            log.exception("pruning finished runs failed")
            return
        if pruned:
            log.info(
                "pruned %d run(s) finished over %gs ago",
                pruned,
                self.older_than,
                extra={"action": "prune"},
            )
