"""The replay engine: execute a claimed run's workflow function against its stored steps.

Every execution replays the function from the top. Steps stored as completed return their
stored result at once; the others run. An execution ends in exactly one fenced write:
finish (succeeded/failed), suspend (durable sleep), release (graceful shutdown) or retry —
or in none at all when the lease was lost, because then the run belongs to someone else.

Stopping happens at step boundaries through ``Interrupt``, a ``BaseException``: a
workflow's ``except Exception`` cannot swallow a durable sleep, a shutdown or a cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, NoReturn

from stepwise.backends.base import (
    Backend,
    ClaimedRun,
    FinishRun,
    ReleaseRun,
    RetryRun,
    RunStatus,
    StepRecord,
    SuspendRun,
    WriteOp,
)
from stepwise.core import codec, divergence, runlog, tracebacks, tracing
from stepwise.core.children import ChildCall
from stepwise.core.context import WorkflowContext
from stepwise.core.definitions import WorkflowDefinition, child_call
from stepwise.core.events import ExecutionListener
from stepwise.core.journal import Journal, LeaseLost
from stepwise.core.lease import Lease
from stepwise.core.steps import StepApi, cancel_requested
from stepwise.errors import (
    DatabaseUnavailable,
    DeadlineExceeded,
    InvalidInput,
    StepAttemptsExceeded,
    StepNotAwaited,
    StepResultError,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_STEP_ATTEMPTS = 10_000
"""Hard cap of step attempts per run, so a crash loop or a runaway loop cannot go on forever."""


class Stop(enum.Enum):
    NONE = "none"
    SUSPEND = "sleeping"
    RELEASE = "released"
    ABANDON = "abandoned"
    DEADLINE = "deadline"
    FAIL = "failed"


class Interrupt(BaseException):
    """Raised at a step boundary to stop the workflow function; never an error of the user's."""


class WorkflowRaised(Exception):
    """Carries a ``BaseException`` that the workflow function raised itself (``SystemExit``,
    ``KeyboardInterrupt``, a ``CancelledError`` of its own…) out of its task as an ordinary
    error: it fails (or retries) the run instead of ending the worker or releasing the run."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


_UNTRACKED = contextlib.nullcontext()


class _Tracked:
    """``task`` in ``inflight`` while inside: a class, not a generator, as it is entered once
    per step."""

    __slots__ = ("_inflight", "_task")

    def __init__(self, inflight: set[asyncio.Task[Any]], task: asyncio.Task[Any]) -> None:
        self._inflight = inflight
        self._task = task

    def __enter__(self) -> None:
        self._inflight.add(self._task)

    def __exit__(self, *exc: object) -> None:
        self._inflight.discard(self._task)


class Execution:
    """One worker's attempt at one claimed run."""

    def __init__(
        self,
        claimed: ClaimedRun,
        definition: WorkflowDefinition,
        journal: Journal,
        lease: Lease,
        *,
        listener: ExecutionListener | None = None,
        backend: Backend | None = None,
        on_divergence: divergence.OnDivergence = divergence.OnDivergence.WARN,
        max_step_attempts: int = DEFAULT_MAX_STEP_ATTEMPTS,
        max_log_records: int = runlog.DEFAULT_MAX_RECORDS,
    ) -> None:
        self.run = claimed.run
        self.run_id = claimed.run.id
        self.token = claimed.lease_token
        self.memo: dict[str, StepRecord] = {s.key: s for s in claimed.steps}
        self.definition = definition
        self.journal = journal
        self.lease = lease
        self.listener = listener or ExecutionListener()
        self._backend = backend
        self._on_divergence = on_divergence
        self._steps: StepApi | None = None
        self._max_attempts = max_step_attempts
        self._attempts_used = sum(s.attempts for s in claimed.steps)
        self._stop = Stop.NONE
        self._fail_error: BaseException | None = None
        self._wake_at: datetime | None = None
        self._task: asyncio.Task[Any] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._max_log_records = max_log_records
        self._log: runlog.RunLog | None = None
        self._why: str | None = None
        """Why the run failed or is retried, in one line, for the worker's log."""

    # ---- called by steps, at step boundaries ----
    def boundary(self) -> None:
        if self._stop is not Stop.NONE:
            raise Interrupt(self._stop.value)

    async def may_start(self, key: str) -> None:
        """Return when step ``key`` may start: at a boundary, while the lease is surely held
        (a stale holder never starts a step; see ``lease``)."""
        self.boundary()
        if not self.lease.fresh:
            log.info(
                "run %s: lease not renewed lately; step %r waits for the heartbeat",
                self.run_id,
                key,
            )
            await self.lease.held()
            self.boundary()

    def count_attempt(self) -> None:
        if self._attempts_used >= self._max_attempts:
            self._fail(StepAttemptsExceeded(f"run used up its {self._max_attempts} step attempts"))
            raise Interrupt(Stop.FAIL.value)
        self._attempts_used += 1

    def suspend_until(self, wake_at: datetime) -> NoReturn:
        if self._wake_at is None or wake_at < self._wake_at:
            self._wake_at = wake_at
        if self._stop is Stop.NONE:
            self._stop = Stop.SUSPEND
        raise Interrupt(Stop.SUSPEND.value)

    def child_call(self, workflow: object, value: Any) -> ChildCall:
        return child_call(workflow, value, self.journal.max_payload_bytes)

    def tracking(self) -> AbstractContextManager[None]:
        """Mark the current task as a step in flight, so stopping waits for it to settle (the
        workflow's own task, where a sequential step runs, needs no mark)."""
        task = asyncio.current_task()
        if task is None or task is self._task:
            return _UNTRACKED
        return _Tracked(self._inflight, task)

    # ---- called by the worker ----
    def release(self) -> None:
        """Graceful shutdown: stop at the next step boundary and give the run back."""
        if self._stop is Stop.NONE:
            self._stop = Stop.RELEASE

    def abandon(self) -> None:
        """The lease is gone (canceled or taken over): stop now and write nothing."""
        self._stop = Stop.ABANDON
        self._cancel_all()

    def _fail(self, error: BaseException) -> None:
        self._stop = Stop.FAIL
        self._fail_error = error

    def _deadline_passed(self) -> None:
        if self._stop in (Stop.NONE, Stop.RELEASE, Stop.SUSPEND):
            self._stop = Stop.DEADLINE
            self._cancel_all()

    def _cancel_all(self) -> None:
        for task in (self._task, *self._inflight):
            if task is not None and not task.done():
                task.cancel()

    # ---- the execution itself ----
    async def execute(self) -> str:
        """Run the workflow to its next resting point; returns the outcome's name.

        The worker's log gets one line when it starts and one for its outcome (``failed`` at
        WARNING, the others at INFO), with ``run_id``, ``workflow`` and ``action``
        (``run_<outcome>``) as the record's attributes, for JSON logs. When tracing
        (``tracing``), the execution is a span, current while the workflow runs."""
        traced = tracing.execution(self.run, self.memo, self.listener)
        if traced is not None:
            self.listener = traced
        with tracing.active(traced):
            self.listener.run_started(self.run_id, self.run.workflow, self.run.claims)
            self._log_outcome("started", f"claim {self.run.claims}")
            outcome = await self._execute()
            self.listener.run_finished(self.run_id, outcome)
            self._log_outcome(outcome, self._why)
            tracing.concluded(traced, outcome, self._why, self._wake_at)
        return outcome

    def _log_outcome(self, outcome: str, why: str | None) -> None:
        level = logging.WARNING if outcome == "failed" else logging.INFO
        fields = {"run_id": self.run_id, "workflow": self.run.workflow, "action": f"run_{outcome}"}
        suffix = "" if why is None else f": {why}"
        log.log(level, "run %s (workflow %s) %s%s", self.run_id, self.run.workflow, outcome,
                suffix, extra=fields)  # fmt: skip

    async def _execute(self) -> str:
        try:
            value = self.definition.parse_input(self.run.input)
        except Exception as exc:  # a validator of the user's may raise anything
            error = (
                exc
                if isinstance(exc, InvalidInput)
                else InvalidInput(f"input of workflow {self.run.workflow!r} is invalid: {exc}")
            )
            return await self._write(self._finish(RunStatus.FAILED, error=error), "failed")
        self._steps = StepApi(self)
        self._log = runlog.RunLog(
            self.journal, self.token, self.run_id, self.run.attempt, self._max_log_records
        )
        ctx: WorkflowContext[Any] = WorkflowContext(
            input=value,
            run_id=self.run_id,
            version=self.run.version,
            attempt=self.run.attempt,
            step=self._steps,
            scheduled_at=self.run.scheduled_at,
            log=runlog.RunLogger(self.run_id, self.run.workflow),
        )
        self._task = asyncio.create_task(self._body(ctx, self._log), name=f"run-{self.run_id}")
        deadline = None
        if self.run.deadline_at is not None:
            delay = (self.run.deadline_at - datetime.now(UTC)).total_seconds()
            deadline = asyncio.get_running_loop().call_later(max(delay, 0), self._deadline_passed)
        try:
            await asyncio.wait({self._task})
            await self._settle()
        finally:
            if deadline is not None:
                deadline.cancel()
        return await self._conclude(self._task)

    async def _body(self, ctx: WorkflowContext[Any], lines: runlog.RunLog) -> Any:
        try:
            with lines.body():
                return await self.definition.fn(ctx)
        except (Exception, Interrupt):
            raise
        except asyncio.CancelledError as exc:
            if cancel_requested():
                raise
            raise WorkflowRaised(exc) from exc
        except BaseException as exc:
            raise WorkflowRaised(exc) from exc

    async def _settle(self) -> None:
        """Wait for steps still in flight (e.g. gather's siblings of a sleeping step) so their
        results are stored before the run is put aside."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    async def _conclude(self, task: asyncio.Task[Any]) -> str:
        stop = self._stop
        error = None if task.cancelled() else task.exception()  # always retrieved: no warnings
        forgotten = self._steps.unawaited() if self._steps is not None else []
        if isinstance(error, WorkflowRaised):
            error = error.original
        if stop is Stop.ABANDON:
            if self._log is not None:
                self._log.close()
            self._why = "its lease is gone (canceled, or claimed by another worker)"
            return "abandoned"
        if stop is Stop.DEADLINE:
            late = DeadlineExceeded(f"deadline {self.run.deadline_at} passed")
            return await self._write(self._finish(RunStatus.FAILED, error=late), "failed")
        if stop is Stop.FAIL:
            return await self._write(
                self._finish(RunStatus.FAILED, error=self._fail_error), "failed"
            )
        if stop is Stop.SUSPEND:
            assert self._wake_at is not None
            return await self._write(SuspendRun(self.token, self.run_id, self._wake_at), "sleeping")
        if task.cancelled() or isinstance(error, Interrupt | asyncio.CancelledError):
            if stop is Stop.RELEASE:  # the only stop that interrupts without a reason of its own
                return await self._write(ReleaseRun(self.token, self.run_id), "released")
            # Not the engine's doing: the workflow's own code canceled its task. Releasing the
            # run would only have it claimed again at once, forever.
            error = asyncio.CancelledError("the workflow function's task was canceled by its code")
        if error is None and forgotten:  # the same code would forget it again: no retry
            return await self._write(
                self._finish(RunStatus.FAILED, error=StepNotAwaited(forgotten)), "failed"
            )
        if error is None:
            declared = self.definition.output_type
            try:
                output = codec.encode_result(
                    codec.WORKFLOW_RESULT, task.result(), self.journal.max_payload_bytes, declared
                )
                codec.decode_result(codec.WORKFLOW_RESULT, output, declared)  # as clients will
            except StepResultError as exc:
                return await self._write(self._finish(RunStatus.FAILED, error=exc), "failed")
            op = FinishRun(self.token, self.run_id, RunStatus.SUCCEEDED, output=output)
            return await self._write(op, "succeeded")
        if stop is Stop.RELEASE:
            return await self._write(ReleaseRun(self.token, self.run_id), "released")
        policy = self.definition.retry
        tried = self.run.attempt - self.run.first_attempt + 1  # Client.retry: a fresh budget
        available = None if policy is None else policy.retry_at(tried, self.run.deadline_at, error)
        if available is not None:
            retry = RetryRun(self.token, self.run_id, available, codec.encode_error(error))
            return await self._write(retry, "retrying")
        return await self._write(self._finish(RunStatus.FAILED, error=error), "failed")

    def _finish(self, status: RunStatus, *, error: BaseException | None) -> FinishRun:
        doc = codec.encode_error(error) if error is not None else None
        return FinishRun(self.token, self.run_id, status, error=doc)

    async def _write(self, op: WriteOp, outcome: str) -> str:
        if outcome != "released" and self._stop is not Stop.DEADLINE:
            op, outcome = await self._check_divergence(op, outcome)
        if self._log is not None:
            self._log.close()  # its lines go first in the batch that carries ``op``
        try:
            await self.journal.commit(op)
        except LeaseLost:
            self._why = f"lease lost before it could be marked {outcome}"
            return "abandoned"
        error = op.error if isinstance(op, FinishRun | RetryRun) else None
        if error is not None:
            self._why = tracebacks.one_line(codec.loads(error))
        return outcome

    async def _check_divergence(self, op: WriteOp, outcome: str) -> tuple[WriteOp, str]:
        """Report a replay that left its history (see ``divergence``); with ``fail``, the run
        fails instead of reaching ``outcome``."""
        requested = self._steps.requested if self._steps is not None else frozenset()
        diverged = divergence.detect(self.run_id, self.memo, requested, outcome)
        if diverged is None:
            return op, outcome
        log.warning("%s (workflow %s)", diverged, self.run.workflow)
        self.listener.run_diverged(self.run_id, self.run.workflow, diverged.missing, diverged.new)
        if self._backend is not None:
            try:
                await self._backend.record_warning(
                    self.token, self.run_id, divergence.warning_document(diverged)
                )  # not stored only if the lease is gone: then the next owner reports it
            except DatabaseUnavailable as exc:
                log.warning("run %s: the divergence warning was not stored: %s", self.run_id, exc)
        if self._on_divergence is divergence.OnDivergence.FAIL and outcome != "failed":
            return self._finish(RunStatus.FAILED, error=diverged), "failed"
        return op, outcome
