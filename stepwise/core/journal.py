"""Group commit for one process: many runs' writes share one transaction.

A step's completion is durable before the workflow moves past it — ``commit`` returns only
after the batch holding it was written — but every write queued while one batch is in
flight goes out together in the next one. With 100 runs in flight, one commit carries the
completions of many steps, so the database commits far fewer times than there are steps.

Runs are isolated although their writes share a transaction:

* Every op is checked before it joins a batch (``_check``): a step name the databases cannot
  store is refused at the call that used it. Payloads are checked earlier still, where they
  are encoded (``codec.encode_result`` with ``max_payload_bytes``), so a result too large
  fails its own step.
* A batch carries at most ``MAX_BATCH_BYTES`` of payload, far below the 255 MB a Postgres
  ``jsonb`` value can hold, so values that fit one by one also fit together.
* A write that fails because the database is away is kept and retried: nothing is dropped.
  A batch that fails otherwise is split run by run until the culprit is found (``_isolate``):
  the other runs' ops are written, and the culprit's run is failed with the database's reason,
  so it neither stalls its neighbours nor comes back to fail again.

Fencing is the backend's: a batch reports the lease tokens it refused, and each waiting
``commit`` for such a token raises ``LeaseLost``.

Log lines (``runlog``) wait for the next batch and go first in it, so a run's lines precede
the op that ends its lease; if no batch comes within ``LOG_FLUSH_SECONDS``, they go alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from stepwise.backends.base import (
    Backend,
    FinishRun,
    LogLine,
    NewChild,
    RetryRun,
    RunRecord,
    RunStatus,
    SignalWait,
    StepFinished,
    StepRecord,
    StepSleeping,
    StepStarted,
    StepStatus,
    WriteOp,
    WriteResult,
)
from stepwise.backoff import Backoff
from stepwise.core import codec, limits
from stepwise.errors import DatabaseUnavailable, StepNameError, WriteRefused

log = logging.getLogger(__name__)

RETRY_BACKOFF = Backoff(initial=0.05, cap=2.0)
"""Waits between tries of a write while the database is away."""
MAX_BATCH_BYTES = 64 * 1024 * 1024
"""Payload per batch: a quarter of the largest ``jsonb`` value Postgres accepts (255 MB)."""
LOG_FLUSH_SECONDS = 0.5
"""How long a log line waits for a write to travel with before it goes in a batch alone."""

_Pending = tuple[WriteOp, asyncio.Future[None] | None]
_R = TypeVar("_R")


class LeaseLost(Exception):
    """The run is no longer held under this token (canceled, or claimed by another worker)."""


class Journal:
    def __init__(
        self,
        backend: Backend,
        *,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        on_rejected: Callable[[set[str]], None] | None = None,
    ) -> None:
        self._backend = backend
        self.max_payload_bytes = max_payload_bytes
        """The largest step result or run output, as JSON, that the engine stores."""
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lines: list[LogLine] = []
        self._lines_due: asyncio.TimerHandle | None = None
        self._on_rejected = on_rejected
        self.batches = 0
        """Batches written: with ``ops_written``, shows how well writes are grouped."""
        self.ops_written = 0

    def submit(self, op: WriteOp) -> None:
        """Queue ``op`` without waiting for it (a step start: losing it only re-runs the step)."""
        self._enqueue(op, None)

    def log(self, line: LogLine) -> None:
        """Queue a log line for the next batch, or for one of its own within
        ``LOG_FLUSH_SECONDS`` (on the loop's thread)."""
        self._lines.append(line)
        if self._lines_due is None:
            loop = asyncio.get_running_loop()
            self._lines_due = loop.call_later(LOG_FLUSH_SECONDS, self._flush_lines)

    def _flush_lines(self) -> None:
        if self._lines_due is not None:
            self._lines_due.cancel()
            self._lines_due = None
        if self._lines:
            self._start_flusher()

    async def commit(self, op: WriteOp) -> None:
        """Queue ``op`` and return once it is durable; ``LeaseLost`` if its token was refused."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(op, future)
        await future

    async def start_child(self, child: NewChild) -> RunRecord:
        """The child run ``Backend.start_child`` stored (or found) for the parent's step: its
        own transaction, as the caller needs the child at once."""
        started = await self._fenced(child.token, child.parent_id, lambda: self._start(child))
        return started

    async def await_child(self, token: str, run_id: str, key: str, wake_at: datetime) -> StepRecord:
        """The child step ``key`` as ``Backend.await_child`` left it, awaited until ``wake_at``."""
        step = await self._fenced(
            token, run_id, lambda: self._backend.await_child(token, run_id, key, wake_at)
        )
        return step

    async def _start(self, child: NewChild) -> RunRecord | None:
        _check_key(child.key)
        return await self._backend.start_child(child)

    async def _fenced(
        self, token: str, run_id: str, call: Callable[[], Awaitable[_R | None]]
    ) -> _R:
        """``call``'s answer (a call that must be done in a transaction of its own: the caller
        needs its outcome, so it cannot wait for a batch), retried while the database is away;
        None means the run is no longer held under ``token``: ``LeaseLost``, and the run is
        given up as for a write."""
        failures = 0
        while True:
            try:
                answer = await call()
            except DatabaseUnavailable as exc:
                failures += 1
                delay = RETRY_BACKOFF.delay(failures)
                log.warning("run %s: call failed, retrying in %.2fs: %s", run_id, delay, exc)
                await asyncio.sleep(delay)
                continue
            if answer is None:
                if self._on_rejected is not None:
                    self._on_rejected({token})
                raise LeaseLost(run_id)
            return answer

    def _enqueue(self, op: WriteOp, future: asyncio.Future[None] | None) -> None:
        _check(op)
        self._pending.append((op, future))
        self._start_flusher()

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="stepwise-journal")

    async def _flush_all(self) -> None:
        # Yield once so writes queued in the same loop iteration join this batch.
        await asyncio.sleep(0)
        while self._pending or self._lines:
            if self._lines:
                self._pending[:0] = [(line, None) for line in self._lines]
                self._lines = []
            size = _batch_size(self._pending)
            batch, self._pending = self._pending[:size], self._pending[size:]
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
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
        """Write ``ops``; if the batch fails for a reason other than the database being away,
        find the culprit instead of giving every run up.

        A storage fault must never reach a workflow as if its step had raised (it would fail
        the run, or be caught by the workflow's own code): it is resolved here.
        """
        try:
            return await self._write_retrying(ops)
        except Exception:
            log.warning(
                "write of %d ops failed; writing them run by run to find the culprit",
                len(ops),
                exc_info=True,
            )
            return await self._isolate(_by_token(ops))

    async def _write_retrying(self, ops: list[WriteOp]) -> WriteResult:
        """Write ``ops`` in one transaction, retrying while the database is away."""
        failures = 0
        while True:
            try:
                result = await self._backend.write(ops)
            except DatabaseUnavailable as exc:
                failures += 1
                delay = RETRY_BACKOFF.delay(failures)
                log.warning("write of %d ops failed, retrying in %.2fs: %s", len(ops), delay, exc)
                await asyncio.sleep(delay)
                continue
            self.batches += 1
            self.ops_written += len(ops)
            return result

    async def _isolate(self, groups: list[list[WriteOp]]) -> WriteResult:
        """The ops of ``groups`` (one group per lease token, each in order) failed together:
        write each half on its own, and split again whichever half fails."""
        if len(groups) == 1:
            return await self._one_by_one(groups[0])
        middle = len(groups) // 2
        result = WriteResult()
        for half in (groups[:middle], groups[middle:]):
            try:
                part = await self._write_retrying([op for group in half for op in group])
            except Exception:
                part = await self._isolate(half)
            result.rejected |= part.rejected
        return result

    async def _one_by_one(self, ops: list[WriteOp]) -> WriteResult:
        """One run's ops, each in its own transaction, in order. The first one that fails is
        the culprit: its run is failed and its later ops dropped. (A fault that passes, such
        as a connection in a bad state, fails nothing: the retry then succeeds.)"""
        result = WriteResult()
        for op in ops:
            try:
                part = await self._write_retrying([op])
            except Exception as exc:
                await self._fail_run(op, exc)
                result.rejected.add(op.token)
                return result
            result.rejected |= part.rejected
        return result

    async def _fail_run(self, op: WriteOp, exc: Exception) -> None:
        """Store the run's failure, so the run ends instead of failing again on every claim.
        The caller gives the lease up either way: if even this write fails, the run resumes
        from its stored steps once its lease runs out."""
        refused = WriteRefused(_subject(op), str(exc) or type(exc).__name__)
        log.error("run %s: %s", op.run_id, refused)
        failure = FinishRun(
            op.token, op.run_id, RunStatus.FAILED, error=codec.encode_error(refused)
        )
        try:
            await self._write_retrying([failure])
        except Exception:
            log.exception("run %s: could not store its failure either; giving it up", op.run_id)

    async def receive_signal(self, wait: SignalWait) -> StepRecord:
        """The wait step as stored by ``Backend.receive_signal`` (a signal consumed, the step
        completed or left waiting, all in one transaction of its own: the caller needs the
        outcome, so it cannot wait for a batch), retried while the database is away;
        ``LeaseLost`` if the run is no longer held under the wait's token."""
        _check_key(wait.key)
        step = await self._fenced(
            wait.token, wait.run_id, lambda: self._backend.receive_signal(wait)
        )
        return step

    async def drain(self) -> None:
        """Wait until every queued write (log lines too) was attempted."""
        self._flush_lines()
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)


def _check(op: WriteOp) -> None:
    """Refuse an op that no backend can store, before it can fail a batch it shares."""
    if isinstance(op, StepStarted | StepFinished | StepSleeping):
        _check_key(op.key)


def _check_key(key: str) -> None:
    problem = limits.unstorable(key)
    if problem is not None:
        raise StepNameError(key, f"a step name must not contain {problem}")


def _payload_bytes(op: WriteOp) -> int:
    size = len(op.run_id) + len(op.token)
    if isinstance(op, StepFinished | FinishRun):
        size += len(op.output or "") + len(op.error or "")
    elif isinstance(op, RetryRun):
        size += len(op.error)
    elif isinstance(op, LogLine):
        size += len(op.message)
    return size


def _batch_size(pending: list[_Pending]) -> int:
    """How many of the first ``pending`` ops fit in one batch (always at least one)."""
    total = 0
    for n, (op, _) in enumerate(pending):
        total += _payload_bytes(op)
        if n and total > MAX_BATCH_BYTES:
            return n
    return len(pending)


def _by_token(ops: list[WriteOp]) -> list[list[WriteOp]]:
    """``ops`` grouped by lease token, each group in its original order."""
    groups: dict[str, list[WriteOp]] = {}
    for op in ops:
        groups.setdefault(op.token, []).append(op)
    return list(groups.values())


def _subject(op: WriteOp) -> str:
    """What ``op`` was storing, for the error that explains why its run failed."""
    match op:
        case StepFinished(status=StepStatus.COMPLETED):
            return f"the result of step {op.key!r}"
        case StepStarted() | StepFinished() | StepSleeping():
            return f"step {op.key!r}"
        case FinishRun(status=RunStatus.SUCCEEDED):
            return "the output of the workflow"
        case LogLine():
            return "a log line"
        case _:
            return "the end of the run"


def _coalesce(ops: list[WriteOp]) -> list[WriteOp]:
    """Drop a step's start when its finish is in the same batch: one row write, not two."""
    finished = {(op.token, op.key) for op in ops if isinstance(op, StepFinished)}
    if not finished:
        return ops
    return [
        op for op in ops if not (isinstance(op, StepStarted) and (op.token, op.key) in finished)
    ]
