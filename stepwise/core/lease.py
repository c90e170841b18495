"""A holder's own view of its lease: no step starts once the lease may have lapsed.

Fencing refuses a stale holder's writes, not its side effects. A worker frozen past its lease
(SIGSTOP, a paused VM, a stalled event loop) and then thawed would start the next step of a
run that another worker took over meanwhile, before its next write or heartbeat told it so:
the step's result is refused, but what the step did is done twice.

So a step starts only while the lease is surely held, by this process's monotonic clock, which
keeps counting through a freeze: a lease granted or renewed by a statement *sent* at ``t`` runs
in the database from a moment after ``t``, so it is surely held until ``t + seconds``. A step
due after ``t + seconds - margin`` waits for the heartbeat instead: a renewal lets it start, a
lost lease abandons the run (its task is canceled) before the step ever ran.
"""

from __future__ import annotations

import asyncio
import time

MARGIN = 0.1
"""The part of the lease left unused at its end (for the time between the check and the
step's start): with the default 30 s lease, no step starts 27 s after the last renewal."""


class Lease:
    """The lease of one claimed run, as this process measures it."""

    def __init__(self, seconds: float, granted_at: float) -> None:
        """``granted_at``: ``time.monotonic()`` when the claim was sent."""
        self._usable = seconds * (1 - MARGIN)
        self._until = granted_at + self._usable
        self._renewal = asyncio.Event()

    def renewed(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (monotonic) renewed the lease."""
        self._until = max(self._until, sent_at + self._usable)
        self._renewal.set()

    @property
    def fresh(self) -> bool:
        """Whether the lease is surely held now."""
        return time.monotonic() < self._until

    async def held(self) -> None:
        """Return once the lease is surely held: at once, or after a heartbeat renewed it."""
        while not self.fresh:
            self._renewal.clear()
            await self._renewal.wait()
