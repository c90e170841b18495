"""One LISTEN connection per backend, shared by ``wait_for_work`` and every ``watch()``.

Why one dedicated connection: a pooled connection goes back to the pool between calls, and a
LISTEN must outlive them. Why it supervises itself: notifications sent while it is away are
lost for good, so after any reconnect it tells every consumer to stop trusting what it heard —
``wait_for_work`` wakes (work may have been created meanwhile) and every open watch returns
None once ("re-read everything"). While it is disconnected, waits simply run to their timeout:
the callers poll, which is always correct, only slower.

A lost connection is noticed at once when the server closes it (termination callback) and
within ``PING_INTERVAL`` seconds when it vanishes silently (the liveness probe fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import asyncpg

from stepwise.backoff import Backoff

log = logging.getLogger(__name__)

PING_INTERVAL = 10.0
PING_TIMEOUT = 5.0
RECONNECT_BACKOFF = Backoff(initial=0.05, cap=2.0)

Connect = Callable[[], Awaitable[Any]]
"""Opens a new asyncpg connection (raises on failure)."""


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passed. Unlike ``asyncio.wait_for`` on
    Python 3.11, a cancel that arrives as the event is set is never swallowed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()


@dataclass(frozen=True, slots=True)
class Channels:
    work: str
    runs: str


@dataclass(slots=True, eq=False)
class _Subscriber:
    changed: set[str] = field(default_factory=set)
    reset: bool = False
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Listener:
    """Keeps one connection LISTENing on ``channels``; reconnects with backoff."""

    def __init__(self, connect: Connect, channels: Channels, ping_sql: str) -> None:
        self._connect = connect
        self._channels = channels
        self._ping_sql = ping_sql
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._subscribers: set[_Subscriber] = set()
        self.work = asyncio.Event()
        """Set when work may be claimable; the consumer clears it."""

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._lost.is_set()

    async def start(self) -> None:
        """Connect and LISTEN (errors propagate), then keep it so in the background."""
        await self._listen()
        self._supervisor = asyncio.create_task(self._supervise(), name="stepwise-pg-listener")

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop()

    def watch(self) -> ListenerWatch:
        return ListenerWatch(self)

    def subscribe(self) -> _Subscriber:
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)

    # ---- the connection ----

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            conn.add_termination_listener(self._on_termination)
            await conn.add_listener(self._channels.work, self._on_notification)
            await conn.add_listener(self._channels.runs, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._lost.clear()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._on_termination)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(PING_TIMEOUT):
                    await conn.close()
            conn.terminate()

    async def _supervise(self) -> None:
        while True:
            await self._until_lost()
            log.warning("lost the LISTEN connection; waits poll until it is back")
            await self._drop()
            await self._reconnect()
            log.info("LISTEN connection is back; watchers re-read everything")
            self.work.set()
            for subscriber in self._subscribers:
                subscriber.reset = True
                subscriber.event.set()

    async def _until_lost(self) -> None:
        while not self._lost.is_set():
            await wait_event(self._lost, PING_INTERVAL)
            if self._lost.is_set():
                return
            try:
                assert self._conn is not None
                await self._conn.fetchval(self._ping_sql, timeout=PING_TIMEOUT)
            except Exception as exc:  # whatever broke, a new connection is the cure
                log.warning("the LISTEN connection failed its liveness probe: %r", exc)
                self._lost.set()

    async def _reconnect(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
                return
            except Exception as exc:  # the supervisor must outlive any failure to connect
                failures += 1
                delay = RECONNECT_BACKOFF.delay(failures)
                log.debug("LISTEN reconnect failed, retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)

    # ---- callbacks (run on the event loop) ----

    def _on_termination(self, conn: object) -> None:
        self._lost.set()
        for subscriber in self._subscribers:
            subscriber.event.set()

    def _on_notification(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if channel == self._channels.work:
            self.work.set()
            return
        run_ids = payload.split(",")  # one notification may name many runs
        for subscriber in self._subscribers:
            subscriber.changed.update(run_ids)
            subscriber.event.set()


class ListenerWatch:
    """``base.Watch`` over the listener: run ids as notified, None after a reconnect."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._subscriber: _Subscriber | None = None

    async def __aenter__(self) -> ListenerWatch:
        self._subscriber = self._listener.subscribe()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._subscriber is not None:
            self._listener.unsubscribe(self._subscriber)
            self._subscriber = None

    async def next(self, timeout: float) -> set[str] | None:
        subscriber = self._subscriber
        if subscriber is None:
            raise RuntimeError("use the watch as `async with backend.watch() as w`")
        if not (subscriber.reset or subscriber.changed):
            subscriber.event.clear()
            await wait_event(subscriber.event, timeout)
        if subscriber.reset or not self._listener.connected:
            # Notifications were (or are being) missed: only a full re-read is safe.
            subscriber.reset = False
            subscriber.changed.clear()
            return None
        changed, subscriber.changed = subscriber.changed, set()
        return changed
