"""The version a start without one takes, read at most once per workflow every few seconds.

Reading the versions live workers serve is a database round trip; a client that starts many
runs would pay it on every start. One read is kept per workflow for ``ttl`` seconds, and
concurrent starts share the read in flight, so a rollout reaches new starts within ``ttl``
seconds (``docs/versions.md``). A failed read is not kept.
"""

from __future__ import annotations

import asyncio
import time

from stepwise.backends.base import WORKER_LIVENESS_SECONDS, Backend
from stepwise.core import versions

SERVED_VERSIONS_TTL = 5.0
"""Seconds a start may go on using the versions live workers served when it last read them."""


class ServedVersions:
    def __init__(self, backend: Backend, ttl: float = SERVED_VERSIONS_TTL) -> None:
        self._backend = backend
        self._ttl = ttl
        self._read: dict[str, tuple[float, asyncio.Task[str | None]]] = {}

    async def newest(self, workflow: str) -> str | None:
        """The newest version of ``workflow`` a live worker served at most ``ttl`` seconds ago
        (None: no live worker served one)."""
        now = time.monotonic()
        kept = self._read.get(workflow)
        if kept is None or now - kept[0] >= self._ttl or not _ours(kept[1]):
            kept = (now, asyncio.ensure_future(self._newest(workflow)))
            self._read[workflow] = kept
        read = kept[1]
        try:
            return await asyncio.shield(read)
        finally:
            failed = read.done() and (read.cancelled() or read.exception() is not None)
            if failed and self._read.get(workflow) is kept:
                del self._read[workflow]

    async def _newest(self, workflow: str) -> str | None:
        served = await self._backend.served_versions(workflow, WORKER_LIVENESS_SECONDS)
        return versions.newest(served)


def _ours(read: asyncio.Task[str | None]) -> bool:
    """Whether ``read`` runs on this event loop (a client may outlive one ``asyncio.run``)."""
    return read.get_loop() is asyncio.get_running_loop()
