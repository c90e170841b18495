"""The claim loop: take runs while slots are free, execute each, give them back on shutdown.

A run is held under a lease that the heartbeat (``leases``) keeps renewing; beside it, the
deadline sweep (``deadlines``) fails waiting runs whose deadline passed. If this process
dies, the lease runs out and another worker claims the run and replays it from its stored
steps. On SIGTERM the worker stops claiming, lets in-flight runs reach a step boundary and
releases them, so another worker takes them at once instead of after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from stepwise.backends.base import Backend, ClaimedRun, ReleaseRun, WorkerInfo
from stepwise.backoff import Backoff
from stepwise.client.client import Client
from stepwise.core import codec, divergence, limits, runlog
from stepwise.core.events import ExecutionListener
from stepwise.core.journal import Journal, LeaseLost
from stepwise.core.lease import Lease
from stepwise.core.registry import Registry, default_registry
from stepwise.core.replay import DEFAULT_MAX_STEP_ATTEMPTS, Execution
from stepwise.errors import DatabaseUnavailable, UnknownWorkflow
from stepwise.worker import recovery
from stepwise.worker.deadlines import DeadlineSweep
from stepwise.worker.leases import Heartbeat
from stepwise.worker.retention import Retention
from stepwise.worker.schedules import Ticker
from stepwise.worker.watchdog import LoopWatchdog

log = logging.getLogger(__name__)

RECONNECT_BACKOFF = Backoff(initial=0.1, cap=5.0)
"""Waits between tries of a claim or a registration while the database is away."""


class Worker:
    """Executes runs of the workflows in ``registry``, at most ``concurrency`` at a time, on
    the database of ``database``: a ``Client`` (``Worker(client)``; the engine passes its
    ``Backend``). ``registry`` defaults to the one ``@workflow`` registers in. A worker stores
    payloads up to ``max_payload_bytes``: by default its client's, else 4 MiB. With
    ``retention`` (seconds or a timedelta) it deletes runs finished longer ago than that
    (``retention``, off by default). With ``schedules`` (the default) it fires the ticks of due
    schedules and saves those its workflows declare; the one-run worker of ``stepwise run``
    does not. It stores at most ``max_log_records`` log lines per run (``runlog``), and
    captures them at INFO, or DEBUG when the root logger is at DEBUG."""

    def __init__(
        self,
        database: Client | Backend,
        registry: Registry = default_registry,
        *,
        concurrency: int = 10,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        shutdown_grace: float = 25.0,
        worker_id: str | None = None,
        listener: ExecutionListener | None = None,
        max_recovery_attempts: int = recovery.DEFAULT_MAX_RECOVERY_ATTEMPTS,
        max_step_attempts: int = DEFAULT_MAX_STEP_ATTEMPTS,
        max_payload_bytes: int | None = None,
        on_divergence: str = divergence.OnDivergence.WARN,
        retention: float | timedelta | None = None,
        schedules: bool = True,
        max_log_records: int = runlog.DEFAULT_MAX_RECORDS,
    ) -> None:
        if isinstance(database, Client):
            backend = database.backend
            inherited = database.max_payload_bytes
        else:
            backend, inherited = database, codec.DEFAULT_MAX_PAYLOAD_BYTES
        self.backend = backend
        self.registry = registry
        self.concurrency = limits.count(concurrency, "concurrency", high=limits.MAX_CONCURRENCY)
        self.lease_seconds = limits.seconds(lease_seconds, "lease_seconds")
        self.poll_interval = limits.seconds(poll_interval, "poll_interval")
        self.shutdown_grace = limits.seconds(shutdown_grace, "shutdown_grace", zero=True)
        self.max_recovery_attempts = limits.count(
            max_recovery_attempts, "max_recovery_attempts", high=recovery.MAX_RECOVERY_ATTEMPTS
        )
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.listener = listener or ExecutionListener()
        self.max_step_attempts = max_step_attempts
        self.max_log_records = runlog.max_records(max_log_records)
        runlog.capture(min(logging.INFO, logging.getLogger().getEffectiveLevel()))
        self.on_divergence = divergence.parse(on_divergence)
        payload = limits.count(
            inherited if max_payload_bytes is None else max_payload_bytes,
            "max_payload_bytes",
            high=codec.MAX_PAYLOAD_BYTES,
        )
        self.journal = Journal(backend, max_payload_bytes=payload, on_rejected=self.lose)
        self.active: dict[str, tuple[Execution, asyncio.Task[str]]] = {}
        self.ready = False
        """True once registered and claiming: what the readiness probe reports."""
        self._slot_freed = asyncio.Event()
        self._group_freed = asyncio.Event()
        """A run of a workflow with a concurrency limit ended here since the last claim."""
        self._heartbeat = Heartbeat(
            backend,
            self.id,
            self.lease_seconds,
            held=lambda: self.held_tokens,
            lose=self.lose,
            renewed=self.renewed,
        )
        self._sweep = DeadlineSweep(backend, self.lease_seconds)
        self._ticker = Ticker(backend, registry, self.poll_interval) if schedules else None
        older_than = None if retention is None else limits.seconds(retention, "retention")
        pruner = database if isinstance(database, Client) else Client(backend)
        self._retention = Retention(pruner, older_than)

    @property
    def held_tokens(self) -> list[str]:
        return list(self.active)

    def renewed(self, tokens: set[str], sent_at: float) -> None:
        """The heartbeat sent at ``sent_at`` (monotonic) renewed the leases of ``tokens``."""
        for token in tokens:
            entry = self.active.get(token)
            if entry is not None:
                entry[0].lease.renewed(sent_at)

    def lose(self, tokens: set[str]) -> None:
        """Runs whose lease is gone (canceled, or taken over after an expiry): stop them now."""
        for token in tokens:
            entry = self.active.get(token)
            if entry is not None:
                log.info("run %s: lease lost, abandoning", entry[0].run_id)
                entry[0].abandon()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down gracefully."""
        info = WorkerInfo(
            self.id,
            socket.gethostname(),
            self.registry.names(),
            self.concurrency,
            self.registry.limits(),
            self.registry.versions(),
        )
        await self._retrying(lambda: self.backend.register_worker(info))
        chores = [
            asyncio.create_task(self._heartbeat.run(stop), name="stepwise-heartbeat"),
            asyncio.create_task(self._sweep.run(stop), name="stepwise-deadline-sweep"),
            asyncio.create_task(self._retention.run(stop), name="stepwise-retention"),
        ]
        if self._ticker is not None:
            ticking = self._ticker.run(stop)
            chores.append(asyncio.create_task(ticking, name="stepwise-schedule-ticker"))
        watchdog = LoopWatchdog(self.lease_seconds)
        watchdog.start()
        log.info(
            "worker %s serving %s (concurrency %d, lease %.0fs)",
            self.id,
            ", ".join(info.workflows) or "no workflows",
            self.concurrency,
            self.lease_seconds,
        )
        try:
            self.ready = True
            await self._claim_loop(stop)
        finally:
            self.ready = False
            watchdog.stop()
            await self._shutdown()
            for chore in chores:
                chore.cancel()
            await asyncio.gather(*chores, return_exceptions=True)
            with contextlib.suppress(DatabaseUnavailable):
                await self.backend.unregister_worker(self.id)

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        names = self.registry.names()
        failures = 0
        try:
            while not stop.is_set():
                free = self.concurrency - len(self.active)
                if free <= 0:
                    self._slot_freed.clear()
                    await _first(stopping, self._slot_freed.wait())
                    continue
                sent_at = time.monotonic()
                self._group_freed.clear()
                try:
                    claimed = await self.backend.claim_runs(
                        self.id, names, free, self.lease_seconds
                    )
                    failures = 0
                except DatabaseUnavailable as exc:
                    failures += 1
                    delay = RECONNECT_BACKOFF.delay(failures)
                    log.warning("claim failed, retrying in %.2fs: %s", delay, exc)
                    await _first(stopping, asyncio.sleep(delay))
                    continue
                for item in claimed:
                    self._start(item, Lease(self.lease_seconds, sent_at))
                if len(claimed) < free:
                    await _first(stopping, self._idle())
        finally:
            stopping.cancel()

    def _start(self, claimed: ClaimedRun, lease: Lease) -> None:
        looping = recovery.crash_loop(claimed, self.max_recovery_attempts)
        if looping is not None:
            log.warning("run %s failed: %s", claimed.run.id, looping)
            self.journal.submit(recovery.fail(claimed, looping))
            return
        try:
            definition = self.registry.get(claimed.run.workflow, claimed.run.version)
        except UnknownWorkflow:  # claims filter by name and version; this guards a change
            self.journal.submit(ReleaseRun(claimed.lease_token, claimed.run.id))
            return
        execution = Execution(
            claimed,
            definition,
            self.journal,
            lease,
            listener=self.listener,
            max_step_attempts=self.max_step_attempts,
            max_log_records=self.max_log_records,
            backend=self.backend,
            on_divergence=self.on_divergence,
        )
        task = asyncio.create_task(execution.execute(), name=f"stepwise-run-{claimed.run.id}")
        self.active[claimed.lease_token] = (execution, task)
        limited = definition.concurrency is not None
        task.add_done_callback(lambda t: self._done(claimed.lease_token, t, limited))

    def _done(self, token: str, task: asyncio.Task[str], limited: bool) -> None:
        self.active.pop(token, None)
        self._slot_freed.set()
        if limited:
            self._group_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("execution of a run crashed", exc_info=task.exception())

    async def _idle(self) -> None:
        """Until work may be claimable: the backend says so (or the poll interval passed), or
        a run of a workflow with a concurrency limit ended here. The database announces no
        freed slot (a finished run wakes no one), so the worker that freed it claims again."""
        freed = asyncio.create_task(self._group_freed.wait())
        try:
            await _first(freed, self.backend.wait_for_work(self.poll_interval))
        finally:
            freed.cancel()

    async def _shutdown(self) -> None:
        """Release in-flight runs at their next step boundary; force it after the grace."""
        if self.active:
            log.info("shutting down: releasing %d run(s)", len(self.active))
        entries = list(self.active.items())
        for execution, _ in self.active.values():
            execution.release()
        tasks = [task for _, task in self.active.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=self.shutdown_grace)
        for token, (execution, task) in entries:
            if not task.done():
                log.warning(
                    "run %s: abandoned after the %gs shutdown grace; it is released, and a step "
                    "still running in its thread is left behind (nothing it returns is stored)",
                    execution.run_id,
                    self.shutdown_grace,
                )
                execution.abandon()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                with contextlib.suppress(LeaseLost):
                    await self.journal.commit(ReleaseRun(token, execution.run_id))
        await self.journal.drain()

    async def _retrying(self, call: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while True:
            try:
                await call()
                return
            except DatabaseUnavailable as exc:
                failures += 1
                delay = RECONNECT_BACKOFF.delay(failures)
                log.warning("database unavailable, retrying in %.2fs: %s", delay, exc)
                await asyncio.sleep(delay)


async def _first(stopping: asyncio.Task[bool], other: Awaitable[Any]) -> None:
    """Wait until ``other`` is done or the stop event fires, whichever is first."""
    task = asyncio.ensure_future(other)
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
