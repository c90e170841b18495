"""Child workflows: ``ctx.step.run_workflow`` and ``ctx.step.start_workflow``.

A child is started by a step of its parent, keyed by that step's memo key: the child run and
the parent's step row that will hold its end are stored in one transaction
(``Backend.start_child``), so a replay finds the step and never starts a second child.

Waiting frees the worker: the parent parks like a durable sleep (until the wait's timeout, or
``NEVER``). The transaction that ends a child (however it ends) stores the end in the parent's
step and makes the parent due once no child it awaits still runs, so 300 children awaited in
one ``gather`` resume their parent once. A replay then reads each child's end from its step:
completed with the child's output, or failed (``ChildWorkflowFailed``, ``ChildWorkflowTimeout``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NoReturn, Protocol, TypeVar, cast

from stepwise.backends.base import NewChild, NewRun, StepFinished, StepRecord, StepStatus
from stepwise.core import codec, tracing
from stepwise.core.events import ExecutionListener
from stepwise.core.journal import Journal
from stepwise.errors import ChildWorkflowFailed, ChildWorkflowTimeout

OutT = TypeVar("OutT")
OutT_co = TypeVar("OutT_co", covariant=True)

NEVER = datetime(9999, 1, 1, tzinfo=UTC)
"""The wake time of a wait without a timeout (a child's end, a signal): only what the run
waits for makes it due."""


class ChildWorkflow(Protocol[OutT_co]):
    """What ``run_workflow`` takes besides a name: a workflow (``@workflow``), whose function's
    return type is the type of the child's output."""

    @property
    def name(self) -> str: ...
    @property
    def fn(self) -> Callable[..., Coroutine[Any, Any, OutT_co]]: ...


@dataclass(frozen=True, slots=True)
class ChildCall:
    """A child to start, checked at the call (``definitions.child_call``): its workflow and
    version, its input as stored, and the type its output is decoded to (None: plain JSON)."""

    workflow: str
    version: str | None
    input: str
    declared: codec.Declared | None


class ChildHost(Protocol):
    """What child steps need from the execution they run in (``replay.Execution``)."""

    @property
    def run_id(self) -> str: ...
    @property
    def token(self) -> str: ...
    @property
    def memo(self) -> Mapping[str, StepRecord]: ...
    @property
    def journal(self) -> Journal: ...
    @property
    def listener(self) -> ExecutionListener: ...

    def boundary(self) -> None: ...

    def suspend_until(self, wake_at: datetime) -> NoReturn: ...

    def tracking(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class ChildHandle(Generic[OutT]):
    """What ``ctx.step.start_workflow`` returns: the child run's id and workflow, and
    ``await handle.result()``, a durable wait for its output (the parent's worker is freed)."""

    id: str
    workflow: str
    step: str
    """The memo key of the parent's step that started the child and holds its end."""
    _children: Children = field(repr=False, compare=False)
    _declared: codec.Declared | None = field(repr=False, compare=False)

    def result(self) -> Coroutine[Any, Any, OutT]:
        """The child's output (of the workflow's declared return type) once it succeeded;
        ``ChildWorkflowFailed`` if it failed or was canceled."""
        return cast(Coroutine[Any, Any, OutT], self._children.wait(self.step, self._declared, None))


class Children:
    """The child steps of one execution (``StepApi`` hands its calls here)."""

    def __init__(self, host: ChildHost) -> None:
        self._ex = host
        self._started: dict[str, StepRecord] = {}
        """Child steps started by this execution: newer than the claim's memo."""

    def _step(self, key: str) -> StepRecord | None:
        return self._started.get(key) or self._ex.memo.get(key)

    async def start(
        self, key: str, call: ChildCall, timeout: float | None, *, wait: bool
    ) -> ChildHandle[Any]:
        """The child of step ``key``, started now unless the step exists; awaited from the
        start (``wait``) until ``timeout`` seconds from now, or ``NEVER``."""
        ex = self._ex
        ex.boundary()
        stored = self._step(key)
        if stored is None:
            now = datetime.now(UTC)
            wake_at = _wake_at(now, timeout) if wait else None
            ex.listener.step_started(ex.run_id, key, 1)
            new = NewRun(
                str(uuid.uuid4()), call.workflow, call.version, call.input,
                traceparent=tracing.current_traceparent(),  # the child step's, when tracing
            )  # fmt: skip
            with ex.tracking():  # a sibling parking the run waits for this child to be stored
                child = await ex.journal.start_child(
                    NewChild(ex.token, ex.run_id, key, new, wake_at)
                )
            stored = StepRecord(
                ex.run_id, key, StepStatus.SLEEPING, None, None, 1, now, None, wake_at,
                child_id=child.id,
            )  # fmt: skip
            self._started[key] = stored
        return ChildHandle(stored.child_id or "", call.workflow, key, self, call.declared)

    async def wait(self, key: str, declared: codec.Declared | None, timeout: float | None) -> Any:
        """The end of the child of step ``key``: its output, its failure raised, or (while it
        runs) the parent parked until the child ends or ``timeout`` passes."""
        ex = self._ex
        ex.boundary()
        stored = self._step(key)
        assert stored is not None, f"child step {key!r} was never started"
        now = datetime.now(UTC)
        if stored.status is StepStatus.SLEEPING and stored.wake_at is None:
            with ex.tracking():
                stored = await ex.journal.await_child(
                    ex.token, ex.run_id, key, _wake_at(now, timeout)
                )
            self._started[key] = stored
        if stored.status is StepStatus.COMPLETED:
            ex.listener.step_replayed(ex.run_id, key)
            return codec.decode_result(key, stored.output or "null", declared)
        if stored.status is not StepStatus.SLEEPING:
            raise failure(key, stored)
        assert stored.wake_at is not None
        if stored.wake_at <= now:
            await self._time_out(key, stored, timeout or 0.0, now)
        ex.suspend_until(stored.wake_at)

    async def _time_out(self, key: str, stored: StepRecord, timeout: float, now: datetime) -> None:
        """The wait ran out of time: stored as the step's final failure, raised; the child
        runs on."""
        ex = self._ex
        error = ChildWorkflowTimeout(key, timeout, stored.child_id or "")
        doc = {**codec.error_document(error, step=key), "child_id": error.child_id}
        doc["timeout"] = timeout
        started = stored.started_at or now
        await ex.journal.commit(
            StepFinished(
                ex.token, ex.run_id, key, StepStatus.FAILED, None, codec.dumps(doc),
                stored.attempts, started, now,
            )
        )  # fmt: skip
        ex.listener.step_finished(
            ex.run_id, key, ok=False, seconds=0.0, error=str(error), retrying=False
        )
        raise error


def failure(key: str, stored: StepRecord) -> ChildWorkflowFailed | ChildWorkflowTimeout:
    """The error a child step stored as failed (or canceled) raises in the workflow."""
    doc: dict[str, Any] = codec.loads(stored.error) if stored.error else {}
    child_id = str(doc.get("child_id") or stored.child_id or "")
    if doc.get("type") == ChildWorkflowTimeout.__name__:
        return ChildWorkflowTimeout(key, float(doc.get("timeout") or 0.0), child_id)
    status = str(doc.get("status") or "canceled")
    return ChildWorkflowFailed(
        key, child_id, str(doc.get("workflow", "")), status, doc.get("error")
    )


def _wake_at(now: datetime, timeout: float | None) -> datetime:
    return NEVER if timeout is None else now + timedelta(seconds=timeout)
