"""Group commit for one process: many runs' writes share one transaction.

A step's completion is durable before the workflow moves past it — ``commit`` returns only
after the batch holding it was written — but every write queued while one batch is in
flight goes out together in the next one. With 100 runs in flight, one commit carries the
completions of many steps, so the database commits far fewer times than there are steps.

A write that fails because the database is away is kept and retried: nothing is dropped.
A write that fails otherwise gives its runs up, as if their leases were lost (see ``_apply``).
Fencing is the backend's: a batch reports the lease tokens it refused, and each waiting
``commit`` for such a token raises ``LeaseLost``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from stepwise.backends.base import Backend, StepFinished, StepStarted, WriteOp, WriteResult
from stepwise.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class LeaseLost(Exception):
    """The run is no longer held under this token (canceled, or claimed by another worker)."""


class Journal:
    def __init__(
        self, backend: Backend, *, on_rejected: Callable[[set[str]], None] | None = None
    ) -> None:
        self._backend = backend
        self._pending: list[tuple[WriteOp, asyncio.Future[None] | None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._on_rejected = on_rejected
        self.batches = 0
        """Batches written: with ``ops_written``, shows how well writes are grouped."""
        self.ops_written = 0

    def submit(self, op: WriteOp) -> None:
        """Queue ``op`` without waiting for it (a step start: losing it only re-runs the step)."""
        self._enqueue(op, None)

    async def commit(self, op: WriteOp) -> None:
        """Queue ``op`` and return once it is durable; ``LeaseLost`` if its token was refused."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(op, future)
        await future

    def _enqueue(self, op: WriteOp, future: asyncio.Future[None] | None) -> None:
        self._pending.append((op, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="stepwise-journal")

    async def _flush_all(self) -> None:
        # Yield once so writes queued in the same loop iteration join this batch.
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = self._pending, []
            await self._write(batch)

    async def _write(self, batch: list[tuple[WriteOp, asyncio.Future[None] | None]]) -> None:
        result = await self._apply(_coalesce([op for op, _ in batch]))
        if result.rejected and self._on_rejected is not None:
            self._on_rejected(result.rejected)
        for op, future in batch:
            if future is None or future.done():
                continue
            if op.token in result.rejected:
                future.set_exception(LeaseLost(op.run_id))
            else:
                future.set_result(None)

    async def _apply(self, ops: list[WriteOp]) -> WriteResult:
        """Write ``ops``, retrying while the database is away.

        Any other failure leaves it unknown whether the ops were applied. Their runs are then
        reported as rejected and abandoned like lost leases: they resume from their stored
        steps once the leases run out. A storage fault must never reach a workflow as if its
        step had raised (it would fail the run, or be caught by the workflow's own code).
        """
        attempt = 0
        while True:
            try:
                result = await self._backend.write(ops)
            except DatabaseUnavailable as exc:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                log.warning("write of %d ops failed, retrying in %.2fs: %s", len(ops), delay, exc)
                await asyncio.sleep(delay)
                continue
            except Exception:
                log.exception("write of %d ops failed; abandoning their runs", len(ops))
                return WriteResult(rejected={op.token for op in ops})
            self.batches += 1
            self.ops_written += len(ops)
            return result

    async def drain(self) -> None:
        """Wait until every queued write was attempted."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)


def _coalesce(ops: list[WriteOp]) -> list[WriteOp]:
    """Drop a step's start when its finish is in the same batch: one row write, not two."""
    finished = {(op.token, op.key) for op in ops if isinstance(op, StepFinished)}
    if not finished:
        return ops
    return [
        op for op in ops if not (isinstance(op, StepStarted) and (op.token, op.key) in finished)
    ]
