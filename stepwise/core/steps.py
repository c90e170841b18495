"""``ctx.step``: durable steps and durable sleeps, keyed by name.

Memo keys are fixed when ``ctx.step.run`` is *called*, never by the order in which steps
finish: a name used again within one execution becomes ``name:1``, ``name:2``… in call order,
so a replay on another worker derives exactly the same keys.

Steps are steps: whatever a step function raises, ``BaseException``s included (``SystemExit``,
``KeyboardInterrupt``, a ``CancelledError`` of its own), is that step's failure, stored and
retried per its policy. Only a cancellation of the step's task (the engine stopping the run, or
the workflow's own ``wait_for``) propagates as one. Steps do not nest: a step function that
calls ``ctx.step.run`` or ``ctx.step.sleep`` is refused at the call (``NestedStepError``),
because the inner step's key would take a place in the memo that a replay could not rebuild.

An attempt past its ``timeout`` fails with ``StepTimeout``. An async function is cancelled; a
sync one cannot be (Python cannot kill a thread): its thread runs on, holding no worker slot
(the worker counts runs, and the run moves on to its retry), and what it returns is dropped,
because the future it would resolve was cancelled with the attempt. A failure that is final
(attempts used up, not retryable, past the deadline) is stored as final, so a replay raises
it again instead of trying the step anew: the workflow sees what it saw the first time.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, Protocol, TypeVar, cast, overload

from stepwise.backends.base import (
    RunRecord,
    SignalWait,
    StepFinished,
    StepRecord,
    StepSleeping,
    StepStarted,
    StepStatus,
)
from stepwise.core import calls, codec, limits, runlog
from stepwise.core.children import NEVER, ChildCall, ChildHandle, Children, ChildWorkflow
from stepwise.core.events import ExecutionListener
from stepwise.core.journal import Journal
from stepwise.core.retry import DEFAULT_STEP_RETRY, RetryPolicy
from stepwise.errors import (
    NestedStepError,
    StepFailed,
    StepNameError,
    StepNotCallable,
    StepResultError,
    StepTimeout,
)

MAX_NAME_LENGTH = 200

T = TypeVar("T")

_running_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stepwise_running_step", default=None
)
"""The key of the step whose function runs in this context (threads and tasks inherit it)."""

_NOT_RETRIED = (StepResultError, NestedStepError)
"""Step errors that the same code would raise again: retrying cannot help."""

FINAL = "final"
"""The key, in a stored step error, that marks the failure the workflow received."""
RETRYABLE = "retryable"
"""The key, in a stored final step error, that says whether its policy deemed it retryable."""
ATTEMPT = "attempt"
"""The key, in a stored step error, of the attempt that failed."""
EARLIER = "earlier"
"""The key, in a stored step error, of the errors of the step's earlier attempts, oldest first:
``{"attempt", "type", "message", "at"}`` each, without traceback, so ``runs show`` can show
every attempt's error although the step row keeps one error."""
MAX_EARLIER = 20
"""Earlier attempts a stored step error keeps (the latest): bounded, for unlimited retries."""
_EARLIER_MESSAGE_CHARS = 500


class MemoKeys:
    """Deterministic keys in call order: ``name``, ``name:1``, ``name:2``…"""

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._taken: set[str] = set()

    def next(self, name: object) -> str:
        if not isinstance(name, str) or not name.strip():
            raise StepNameError(
                repr(name),
                f"a step name must be a non-empty string, got {type(name).__name__} {name!r}",
            )
        if len(name) > MAX_NAME_LENGTH:
            raise StepNameError(name[:40] + "…", f"longer than {MAX_NAME_LENGTH} characters")
        index = self._count.get(name, 0)
        key = name if index == 0 else f"{name}:{index}"
        while key in self._taken:
            index += 1
            key = f"{name}:{index}"
        self._count[name] = index + 1
        self._taken.add(key)
        return key

    @property
    def taken(self) -> frozenset[str]:
        """Every key handed out so far."""
        return frozenset(self._taken)


def _seconds(duration: float | timedelta) -> float:
    """A finite, bounded duration: nan would sleep forever, a century overflows wake-up times."""
    return limits.seconds(duration, "ctx.step.sleep duration", zero=True)


def cancel_requested() -> bool:
    """Whether the current task was asked to cancel: a ``CancelledError`` without such a request
    was raised by user code, and is that code's failure."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _earlier_errors(stored: StepRecord | None) -> list[dict[str, Any]]:
    """The errors of a step's attempts so far, oldest first, from its stored error (attempts
    made by an execution before this one, on this worker or a dead one)."""
    if stored is None or stored.error is None:
        return []
    doc = codec.loads(stored.error)
    if not isinstance(doc, dict):
        return []
    return [*doc.get(EARLIER, []), _summary(doc)][-MAX_EARLIER:]


def _summary(error: dict[str, Any]) -> dict[str, Any]:
    """An attempt's error as its successors' documents keep it: no traceback, message cut."""
    kept = {k: error[k] for k in (ATTEMPT, "type", "message", "at") if k in error}
    if isinstance(kept.get("message"), str):
        kept["message"] = kept["message"][:_EARLIER_MESSAGE_CHARS]
    return kept


def _refuse_nested(name: object) -> None:
    outer = _running_step.get()
    if outer is not None:
        raise NestedStepError(str(name), outer)


class StepHost(Protocol):
    """What the step API needs from the execution it runs in (``replay.Execution``): the run,
    its lease token and stored steps, where writes go and who hears of them, and the points at
    which the engine may stop the workflow. Declared here, so steps never import the engine."""

    @property
    def run(self) -> RunRecord: ...
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

    def boundary(self) -> None:
        """Raise if the engine stopped the run (at every step boundary)."""

    async def may_start(self, key: str) -> None:
        """Return once step ``key`` may start an attempt (see ``replay.Execution``)."""

    def count_attempt(self) -> None:
        """Count one step attempt against the run's cap (raise past it)."""

    def suspend_until(self, wake_at: datetime) -> NoReturn:
        """Put the run aside until ``wake_at`` (a durable sleep); never returns."""

    def tracking(self) -> AbstractContextManager[None]:
        """Mark the current task as a step in flight while inside."""

    def child_call(self, workflow: object, value: Any) -> ChildCall:
        """The child run ``workflow`` (a definition or a name) with input ``value`` would be
        (``definitions.child_call``); raises what the call did wrong."""


class StepApi:
    """``ctx.step.run(name, fn, *args)`` and ``ctx.step.sleep(name, duration)``."""

    def __init__(self, execution: StepHost) -> None:
        self._ex = execution
        self._keys = MemoKeys()
        self._unawaited: dict[str, Coroutine[Any, Any, Any]] = {}
        self._children = Children(execution)

    @property
    def requested(self) -> frozenset[str]:
        """The memo keys this execution asked for (what a divergence check compares)."""
        return self._keys.taken

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Awaitable[T]: ...
    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Awaitable[T]: ...
    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Awaitable[Any]:
        """Run ``fn(*args, **kwargs)`` once for this run (durably), or return its stored result
        on replay.

        The arguments are bound at the call, so ``ctx.step.run(f"p-{i}", process, i)`` in a loop
        gets each ``i`` (a ``lambda: process(i)`` would see the loop's last one). ``fn`` may be
        sync (runs in a thread) or async. Its result must be something pydantic serialises to
        JSON; the workflow receives it after a JSON round trip, as the type ``fn`` declares (see
        ``codec.declared_result``). A failure is retried per ``retry`` (3 attempts with backoff
        by default), then raised as ``StepFailed``. An attempt running longer than ``timeout``
        (seconds or a timedelta) fails with ``StepTimeout``. ``retry`` and ``timeout`` are
        ours, never passed on: to give ``fn`` a keyword of one of these names, bind it with
        ``functools.partial``. The step runs only when awaited (alone or in ``gather``); one
        never awaited fails the run (``StepNotAwaited``).
        """
        _refuse_nested(name)
        if not callable(fn):
            raise StepNotCallable(str(name), fn)
        seconds = None if timeout is None else limits.seconds(timeout, f"timeout of step {name!r}")
        key = self._keys.next(name)
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        policy = retry or DEFAULT_STEP_RETRY
        step = self._run(key, call, policy, codec.declared_result(fn), seconds)
        self._unawaited[key] = step
        return step

    def unawaited(self) -> list[str]:
        """The keys of steps started but never awaited, in call order. Their coroutines are
        closed, so none of them can run later, and Python does not warn about them."""
        keys = list(self._unawaited)
        for step in self._unawaited.values():
            step.close()
        self._unawaited.clear()
        return keys

    @overload
    def run_workflow(
        self,
        workflow: ChildWorkflow[T],
        input: Any = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Awaitable[T]: ...
    @overload
    def run_workflow(
        self,
        workflow: str,
        input: Any = None,
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Awaitable[Any]: ...
    def run_workflow(
        self,
        workflow: ChildWorkflow[T] | str,
        input: Any = None,  # noqa: A002 - mirrors ctx.input
        *,
        name: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Awaitable[T]:
        """Start a run of ``workflow`` (the object, or its name) with ``input`` as a child of
        this run, once, and return its output. A step: ``name`` (the workflow's name by
        default) is its memo key, so a replay never starts a second child. While the child
        runs, this run is put aside without holding a worker slot; the child's end makes it due.
        A child that fails or is canceled raises ``ChildWorkflowFailed`` here. After
        ``timeout`` (seconds or a timedelta) without an end, ``ChildWorkflowTimeout`` is raised
        and the child is left running. Canceling this run cancels its unfinished children."""
        key, call, seconds = self._child_call(workflow, input, name, timeout)
        step = self._child(key, call, seconds, wait=True)
        self._unawaited[key] = step
        return cast(Awaitable[T], step)

    @overload
    def start_workflow(
        self,
        workflow: ChildWorkflow[T],
        input: Any = None,
        *,
        name: str | None = None,
    ) -> Awaitable[ChildHandle[T]]: ...
    @overload
    def start_workflow(
        self,
        workflow: str,
        input: Any = None,
        *,
        name: str | None = None,
    ) -> Awaitable[ChildHandle[Any]]: ...
    def start_workflow(
        self,
        workflow: ChildWorkflow[T] | str,
        input: Any = None,  # noqa: A002 - mirrors ctx.input
        *,
        name: str | None = None,
    ) -> Awaitable[ChildHandle[T]]:
        """Start a child run like ``run_workflow`` without waiting for it: the handle's
        ``id`` names the child, and ``await handle.result()`` waits for its output durably
        (the same step: a replay returns the stored output)."""
        key, call, _ = self._child_call(workflow, input, name, None)
        step = self._child(key, call, None, wait=False)
        self._unawaited[key] = step
        return cast(Awaitable[ChildHandle[T]], step)

    def _child_call(
        self,
        workflow: ChildWorkflow[Any] | str,
        value: Any,
        name: str | None,
        timeout: float | timedelta | None,
    ) -> tuple[str, ChildCall, float | None]:
        """The memo key, the checked call and the timeout in seconds of a child step."""
        _refuse_nested(name if name is not None else workflow)
        call = self._ex.child_call(workflow, value)
        label = name if name is not None else call.workflow
        seconds = None if timeout is None else limits.seconds(timeout, f"timeout of {label!r}")
        return self._keys.next(label), call, seconds

    async def _child(self, key: str, call: ChildCall, timeout: float | None, *, wait: bool) -> Any:
        del self._unawaited[key]  # awaited at last
        handle = await self._children.start(key, call, timeout, wait=wait)
        if not wait:
            return handle
        return await self._children.wait(key, call.declared, timeout)

    def sleep(self, name: str, duration: float | timedelta) -> Awaitable[None]:
        """Pause the run for ``duration`` (seconds or timedelta) without holding a worker slot:
        the run is put aside and resumed, on any worker, once the time has passed."""
        _refuse_nested(name)
        key = self._keys.next(name)
        return self._sleep(key, _seconds(duration))

    def wait_for_signal(
        self, name: str, *, timeout: float | timedelta | None = None
    ) -> Awaitable[Any]:
        """The payload of the next signal ``name`` sent to this run (``client.signal``), or
        None once ``timeout`` (seconds or a timedelta) passed without one. While it waits, the
        run is put aside without holding a worker slot, and resumes on any worker when the
        signal arrives. Signals are buffered: one sent before the wait is delivered to it; each
        reaches one wait, once, in send order per name. A step: ``name`` is its memo key
        (``name:1``… when repeated), and a replay returns the payload it received."""
        _refuse_nested(name)
        key = self._keys.next(name)
        seconds = None if timeout is None else limits.seconds(timeout, "timeout", zero=True)
        return self._wait_for_signal(key, name, seconds)

    async def _run(
        self,
        key: str,
        fn: Callable[[], Any],
        policy: RetryPolicy,
        declared: codec.Declared | None,
        timeout: float | None,
    ) -> Any:
        del self._unawaited[key]  # awaited at last: this line runs on the first await
        ex = self._ex
        ex.boundary()
        stored = ex.memo.get(key)
        if stored is not None and stored.status is StepStatus.COMPLETED:
            ex.listener.step_replayed(ex.run_id, key)
            return codec.decode_result(key, stored.output or "null", declared)
        attempts = stored.attempts if stored is not None else 0
        earlier = _earlier_errors(stored)
        if stored is not None and stored.status is StepStatus.FAILED:
            doc = codec.loads(stored.error) if stored.error else {}
            if doc.get(FINAL) or not policy.allows_another(attempts):
                raise StepFailed(
                    key,
                    doc.get("type", "Error"),
                    doc.get("message", ""),
                    attempts,
                    retryable=doc.get(RETRYABLE, True),
                )
        started = datetime.now(UTC)
        with ex.tracking():
            while True:
                await ex.may_start(key)
                ex.count_attempt()
                attempts += 1
                ex.listener.step_started(ex.run_id, key, attempts)
                start = StepStarted(ex.token, ex.run_id, key, attempts, started)
                if ex.run.recoveries:
                    # A worker died running this run: the start is stored before the step
                    # runs, so that if it kills this worker too, the crash loop names it.
                    await ex.journal.commit(start)
                else:
                    ex.journal.submit(start)
                t0 = time.monotonic()
                try:
                    output, value = await self._attempt(key, attempts, fn, declared, timeout)
                except _NOT_RETRIED as exc:
                    await self._record_failure(
                        key, exc, attempts, started, t0, earlier, retrying=False
                    )
                    raise
                except BaseException as exc:
                    if isinstance(exc, asyncio.CancelledError) and cancel_requested():
                        raise
                    # A retry that would start after the deadline makes this failure final.
                    retry_at = policy.retry_at(attempts, ex.run.deadline_at, exc)
                    retrying = retry_at is not None
                    retryable = policy.retryable(exc)
                    await self._record_failure(
                        key, exc, attempts, started, t0, earlier,
                        retrying=retrying, retryable=retryable,
                    )  # fmt: skip
                    if retry_at is None:
                        message = codec.message_of(exc)
                        raise StepFailed(
                            key, type(exc).__name__, message, attempts, retryable=retryable
                        ) from exc
                    await asyncio.sleep((retry_at - datetime.now(UTC)).total_seconds())
                    continue
                await ex.journal.commit(
                    StepFinished(
                        ex.token,
                        ex.run_id,
                        key,
                        StepStatus.COMPLETED,
                        output,
                        None,
                        attempts,
                        started,
                        datetime.now(UTC),
                    )
                )
                ex.listener.step_finished(
                    ex.run_id,
                    key,
                    ok=True,
                    seconds=time.monotonic() - t0,
                    error=None,
                    retrying=False,
                )
                return value

    async def _attempt(
        self,
        key: str,
        attempt: int,
        fn: Callable[[], Any],
        declared: codec.Declared | None,
        timeout: float | None,
    ) -> tuple[str, Any]:
        """One attempt (see ``_call_as``), failed with ``StepTimeout`` past ``timeout``: also
        when the function swallowed its cancellation, so a late result is never accepted."""
        if timeout is None:
            return await self._call_as(key, attempt, fn, declared)
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                outcome = await self._call_as(key, attempt, fn, declared)
        except BaseException as exc:
            if not scope.expired() or (
                isinstance(exc, asyncio.CancelledError) and cancel_requested()
            ):
                raise
            raise StepTimeout(key, timeout) from exc
        if scope.expired():
            raise StepTimeout(key, timeout)
        return outcome

    async def _call_as(
        self, key: str, attempt: int, fn: Callable[[], Any], declared: codec.Declared | None
    ) -> tuple[str, Any]:
        """``fn``'s result as stored JSON, and as the workflow receives it: decoded from that
        JSON, as a replay would (``StepResultError`` if either fails), run as attempt
        ``attempt`` of step ``key`` (what its log lines say)."""
        limit = self._ex.journal.max_payload_bytes

        def encode(value: Any) -> tuple[str, Any]:
            text = codec.encode_result(key, value, limit, declared)
            return text, codec.decode_result(key, text, declared)

        token = _running_step.set(key)
        try:
            with runlog.step(key, attempt):
                return await calls.call(fn, encode, key)
        finally:
            _running_step.reset(token)

    async def _record_failure(
        self,
        key: str,
        exc: BaseException,
        attempts: int,
        started: datetime,
        t0: float,
        earlier: list[dict[str, Any]],
        *,
        retrying: bool,
        retryable: bool = True,
    ) -> None:
        """Store a failed attempt; ``earlier`` (the errors of the attempts before it) goes into
        its error document, and then gains this one."""
        ex = self._ex
        error = codec.error_document(exc, step=key)
        error[ATTEMPT] = attempts
        if earlier:
            error[EARLIER] = earlier[-MAX_EARLIER:]
        earlier.append(_summary(error))
        if not retrying:
            error[FINAL] = True
            if not retryable:
                error[RETRYABLE] = False
        op = StepFinished(
            ex.token,
            ex.run_id,
            key,
            StepStatus.FAILED,
            None,
            codec.dumps(error),
            attempts,
            started,
            datetime.now(UTC),
        )
        # The final failure must be durable before the workflow sees it; a failure that will
        # be retried only informs (a crash just retries it once more).
        if retrying:
            ex.journal.submit(op)
        else:
            await ex.journal.commit(op)
        ex.listener.step_finished(
            ex.run_id,
            key,
            ok=False,
            seconds=time.monotonic() - t0,
            error=f"{type(exc).__name__}: {codec.message_of(exc)}",
            retrying=retrying,
        )

    async def _sleep(self, key: str, seconds: float) -> None:
        ex = self._ex
        ex.boundary()
        stored = ex.memo.get(key)
        if stored is not None and stored.status is StepStatus.COMPLETED:
            ex.listener.step_replayed(ex.run_id, key)
            return
        now = datetime.now(UTC)
        if stored is not None and stored.wake_at is not None:
            wake_at = stored.wake_at
            started = stored.started_at or now
        else:
            wake_at, started = now + timedelta(seconds=max(seconds, 0.0)), now
            if wake_at > now:
                await ex.journal.commit(StepSleeping(ex.token, ex.run_id, key, wake_at, now))
        if wake_at <= now:
            await ex.journal.commit(
                StepFinished(
                    ex.token, ex.run_id, key, StepStatus.COMPLETED, "null", None, 1, started, now
                )
            )
            ex.listener.step_finished(
                ex.run_id, key, ok=True, seconds=0.0, error=None, retrying=False
            )
            return
        ex.suspend_until(wake_at)

    async def _wait_for_signal(self, key: str, name: str, seconds: float | None) -> Any:
        ex = self._ex
        ex.boundary()
        stored = ex.memo.get(key)
        if stored is not None and stored.status is StepStatus.COMPLETED:
            ex.listener.step_replayed(ex.run_id, key)
            return codec.loads(stored.output or "null")
        now = datetime.now(UTC)
        if stored is not None:  # waiting since an earlier execution: its timeout stands
            wake_at, started = stored.wake_at, stored.started_at or now
        else:
            wake_at = None if seconds is None else now + timedelta(seconds=seconds)
            started = now
            ex.listener.step_started(ex.run_id, key, 1)
        with ex.tracking():  # stored before the run is put aside, as a step in flight is
            await ex.may_start(key)
            wait = SignalWait(ex.token, ex.run_id, key, name, wake_at, started)
            step = await ex.journal.receive_signal(wait)
        if step.status is StepStatus.COMPLETED:
            waited = (datetime.now(UTC) - started).total_seconds()
            ex.listener.step_finished(
                ex.run_id, key, ok=True, seconds=waited, error=None, retrying=False
            )
            return codec.loads(step.output or "null")
        ex.suspend_until(NEVER if wake_at is None else wake_at)
