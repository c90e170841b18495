"""The whole public exception tree of stepwise.

    StepwiseError
    ├── ConfigurationError          bad URL, schema name, flag or environment value
    ├── InvalidArgument             an argument out of range (also a ValueError; carries ``name``)
    ├── DatabaseUnavailable         the database cannot be reached (names the URL, password hidden)
    ├── DatabaseDamaged             the SQLite file is not a usable database (names the file)
    ├── SchemaTooNew                a newer stepwise migrated the database (names both versions)
    ├── IdempotencyConflict         an idempotency key reused with another input (names its run)
    ├── DefinitionError             a workflow definition is wrong (duplicate name, bad signature)
    ├── UnknownWorkflow             no workflow registered under that name (lists the known ones)
    ├── InvalidInput                run input is not JSON or fails the workflow's input model
    ├── StepError                   problems tied to one step (carries ``step``)
    │   ├── StepNameError           a step name that is not a non-empty string
    │   ├── StepResultError         a step's result cannot be stored as JSON or misses its type
    │   ├── NestedStepError         a step function started a step (steps do not nest)
    │   ├── StepNotCallable         a step's function is not callable (also a TypeError)
    │   ├── StepNotAwaited          a step was started but never awaited; the run is failed
    │   ├── StepNotFound            a fork names a step its run does not hold (lists them)
    │   ├── StepTimeout             a step attempt ran past its ``timeout``; retried per its policy
    │   │   └── ChildWorkflowTimeout  a child run did not end within ``run_workflow``'s timeout
    │   ├── ChildWorkflowFailed     a child run failed or was canceled (carries its id and error)
    │   └── StepFailed              a step failed after its retries; raised inside the workflow
    ├── NonRetryableError           raised by user code: its step (or workflow) is not retried
    ├── CrashLoop                   a run's worker died N times in a row without progress
    ├── DeadlineExceeded            a run's deadline passed before it finished; the run is failed
    ├── StepAttemptsExceeded        a run used up its hard cap of step attempts; the run is failed
    ├── WriteRefused                the database refused a run's write; the run is failed
    ├── ReplayDiverged              a replay did not request the steps its history holds
    ├── RunNotFound                 no run with that id
    ├── AmbiguousRunId              a run id prefix that more than one run has (lists them)
    ├── ScheduleNotFound            no schedule with that name
    ├── RunNotRetryable             retrying a run that is not failed or canceled
    ├── RunFinished                 a signal sent to a run that has finished (names its status)
    ├── RunFailed                   waiting on a run that failed (carries the stored error)
    ├── RunCanceled                 waiting on a run that was canceled
    └── WaitTimeout                 a wait ran out of time before the run finished

``Interrupt`` (in ``stepwise.core.replay``) derives from ``BaseException`` on purpose: a
workflow's ``except Exception`` must never swallow a durable sleep, a shutdown, a cancel or a
lost lease. It is an engine signal, not an error, and is not exported.

A run's stored error document names its exception's class (``{"type": "DeadlineExceeded",
…}``); the reasons the engine itself fails a run are classes here, so that name is one of ours.

This module imports nothing of ours, so every layer may raise these.
"""

from __future__ import annotations

from typing import Any


class StepwiseError(Exception):
    """Base class of every error stepwise raises on purpose."""


class ConfigurationError(StepwiseError):
    """A URL, schema name, flag or environment value is not usable."""


class InvalidArgument(StepwiseError, ValueError):
    """An argument no entry point accepts: a nan duration, a workflow name no ``@workflow`` can
    have, an idempotency key too long to store. ``problem`` is the message without the name,
    for callers (the CLI) that name the argument their own way."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name = name
        self.problem = problem


class DatabaseUnavailable(StepwiseError):
    """The database at ``url`` (password hidden) cannot be reached."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the database at {url}: {reason}")
        self.url = url
        self.reason = reason


class DatabaseDamaged(StepwiseError):
    """The SQLite file at ``path`` is not a usable database: damaged, truncated, not a database,
    a directory, or not readable and writable. Retrying cannot help, so it is not
    ``DatabaseUnavailable``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot use the SQLite file {path}: {reason}")
        self.path = path
        self.reason = reason


class SchemaTooNew(StepwiseError):
    """The database's schema was migrated by a newer stepwise: this one would misread it."""

    def __init__(self, url: str, found: int, known: int) -> None:
        super().__init__(
            f"database schema at {url} is version {found}, this stepwise knows up to {known}; "
            "upgrade stepwise"
        )
        self.url = url
        self.found = found
        self.known = known


class IdempotencyConflict(StepwiseError):
    """``key`` already started run ``run_id`` of this workflow with a different input: the same
    key must mean the same request, so the new one is refused rather than silently answered
    with the old run."""

    def __init__(self, key: str, run_id: str, workflow: str) -> None:
        super().__init__(
            f"idempotency key {key!r} already started run {run_id} of workflow {workflow!r} "
            "with a different input"
        )
        self.key = key
        self.run_id = run_id
        self.workflow = workflow


class DefinitionError(StepwiseError):
    """A workflow definition is wrong: a duplicate name, a bad signature."""


class UnknownWorkflow(StepwiseError):
    """No workflow is registered under ``name`` (at ``version``, when given); ``known`` lists
    the workflows that are, or the versions of ``name`` that are."""

    def __init__(self, name: str, known: list[str], version: str | None = None) -> None:
        listed = ", ".join(known) if known else "none"
        if version is None:
            message = f"unknown workflow {name!r}; known workflows: {listed}"
        else:
            message = f"unknown version {version!r} of workflow {name!r}; known versions: {listed}"
        super().__init__(message)
        self.name = name
        self.version = version
        self.known = list(known)


class InvalidInput(StepwiseError):
    """Run input is not JSON, or does not satisfy the workflow's input model."""


class StepError(StepwiseError):
    """An error tied to one step, named by ``step``."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step {step!r}: {message}")
        self.step = step


class StepNameError(StepError):
    """A step name that is not a non-empty string."""


class StepResultError(StepError):
    """A step returned a value that cannot be stored as JSON, or that does not fit the return
    type its function declares."""


class NestedStepError(StepError):
    """The function of step ``step`` started step ``inner``: steps do not nest, because the inner
    step's memo key would depend on what the outer one did, which a replay cannot rebuild."""

    def __init__(self, inner: str, step: str) -> None:
        super().__init__(
            step,
            f"its function started step {inner!r}; steps cannot be nested: start {inner!r} "
            "from the workflow function",
        )
        self.inner = inner


class StepNotCallable(StepError, TypeError):
    """``ctx.step.run(name, f(1))``: the step was handed a value, not a function. Raised at the
    call, before the step exists, so a result computed outside any step is never stored as one."""

    def __init__(self, step: str, got: object) -> None:
        super().__init__(
            step,
            f"the step function must be callable, got {type(got).__name__}; pass the function "
            "and its arguments: ctx.step.run(name, fn, *args, **kwargs)",
        )


class StepNotAwaited(StepError):
    """The workflow returned while a step it started was never awaited (a forgotten ``await``):
    the step never ran, so the run fails instead of succeeding without it. ``steps`` lists every
    such step, in call order."""

    def __init__(self, steps: list[str]) -> None:
        others = f" (and {', '.join(repr(s) for s in steps[1:])})" if len(steps) > 1 else ""
        super().__init__(
            steps[0],
            f"was never awaited{others}; await ctx.step.run(...) or pass it to asyncio.gather",
        )
        self.steps = steps


class StepTimeout(StepError):
    """An attempt of step ``step`` ran longer than its ``timeout`` (seconds). It is that
    attempt's failure, retried per the step's policy. An async step function was cancelled; a
    sync one cannot be, so its thread runs on, and whatever it returns is dropped."""

    def __init__(self, step: str, timeout: float) -> None:
        super().__init__(step, f"did not finish within its timeout of {timeout:g}s")
        self.timeout = timeout


class ChildWorkflowTimeout(StepTimeout):
    """Child run ``child_id``, awaited by step ``step``, did not end within ``timeout`` seconds.
    The child is left running: the parent only stopped waiting for it."""

    def __init__(self, step: str, timeout: float, child_id: str) -> None:
        StepError.__init__(
            self,
            step,
            f"child run {child_id} did not finish within {timeout:g}s (it is still running)",
        )
        self.timeout = timeout
        self.child_id = child_id


class ChildWorkflowFailed(StepError):
    """Child run ``child_id`` (of ``workflow``), started by step ``step``, ended ``status``
    (failed or canceled) with ``error``, its stored error document (None when canceled)."""

    def __init__(
        self, step: str, child_id: str, workflow: str, status: str, error: Any | None
    ) -> None:
        reason = "was canceled" if status == "canceled" else "failed"
        if isinstance(error, dict) and error.get("type"):
            reason += f": {error['type']}: {error.get('message', '')}"
        super().__init__(step, f"child run {child_id} of workflow {workflow!r} {reason}")
        self.child_id = child_id
        self.workflow = workflow
        self.status = status
        self.error = error


class NonRetryableError(StepwiseError):
    """Raise it (or a subclass) from a step to fail the step at once, whatever attempts its
    policy has left: retrying cannot help (a declined card, a 404). Raised by a workflow
    function, it likewise skips the workflow's own retry policy."""


class StepFailed(StepError):
    """A step failed after all its retries.

    ``error_type`` and ``error_message`` describe the original exception; on replay the original
    object is gone, so these fields are what a workflow should branch on. ``retryable`` is False
    when the step's policy judged the error not retryable: then a workflow-level retry would
    only fail the same way, and is not made.
    """

    def __init__(
        self,
        step: str,
        error_type: str,
        error_message: str,
        attempts: int = 1,
        *,
        retryable: bool = True,
    ) -> None:
        super().__init__(step, f"failed after {attempts} attempt(s): {error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.attempts = attempts
        self.retryable = retryable


class ReplayDiverged(StepwiseError):
    """A replay did not follow its run's stored history: completed steps ``missing`` were never
    requested, while the code asked for ``new`` steps the history does not hold (typically a
    step renamed or removed by a deploy while the run was in flight)."""

    def __init__(self, run_id: str, missing: list[str], new: list[str]) -> None:
        listed = f"; it requested steps the history does not hold: {new}" if new else ""
        super().__init__(
            f"run {run_id} diverged from its history: the replay never requested completed "
            f"steps {missing}{listed}"
        )
        self.run_id = run_id
        self.missing = missing
        self.new = new


class WriteRefused(StepwiseError):
    """The database refused to store ``subject`` of a run for ``reason`` (not because it was
    away): the run is failed with this error, so it cannot fail its neighbours' writes again."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"the database refused to store {subject}: {reason}")
        self.subject = subject
        self.reason = reason


class RunNotFound(StepwiseError):
    """No run has the id ``run_id``."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with id {run_id!r}")
        self.run_id = run_id


class AmbiguousRunId(StepwiseError):
    """More than one run has an id that starts with ``prefix``: ``candidates`` lists them
    (the first few, with ``more`` when there are others)."""

    def __init__(self, prefix: str, candidates: list[str], *, more: bool = False) -> None:
        shown = ", ".join(candidates) + (" and more" if more else "")
        super().__init__(f"run id prefix {prefix!r} is ambiguous: it starts {shown}")
        self.prefix = prefix
        self.candidates = candidates


class RunNotRetryable(StepwiseError):
    """Only a failed or canceled run can be retried; run ``run_id`` is ``status``."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id} is {status}: only a failed or canceled run can be retried")
        self.run_id = run_id
        self.status = status


class RunFinished(StepwiseError):
    """A signal was sent to run ``run_id``, which has finished (``status``): no step of it
    will ever wait again, so the signal is refused instead of kept forever."""

    def __init__(self, run_id: str, status: str, signal: str) -> None:
        super().__init__(
            f"run {run_id} has finished ({status}): signal {signal!r} cannot be delivered"
        )
        self.run_id = run_id
        self.status = status
        self.signal = signal


class StepNotFound(StepError):
    """A fork starts from step ``step``, which run ``run_id`` does not hold; ``known`` lists
    the steps it does hold, in the order they were first started."""

    def __init__(self, step: str, run_id: str, known: list[str]) -> None:
        shown = ", ".join(repr(key) for key in known[:20]) + (", …" if len(known) > 20 else "")
        super().__init__(step, f"run {run_id} has no such step; its steps: {shown or 'none'}")
        self.run_id = run_id
        self.known = known


class ScheduleNotFound(StepwiseError):
    """No schedule has the name ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class RunFailed(StepwiseError):
    """The awaited run failed; ``error`` is its stored error document."""

    def __init__(self, run_id: str, error: dict[str, Any] | None) -> None:
        detail = (error or {}).get("message", "unknown error")
        kind = (error or {}).get("type", "Error")
        at = (error or {}).get("at")  # where in the user's code (``core.tracebacks``)
        where = f" at {at}" if at else ""
        super().__init__(f"run {run_id} failed: {kind}: {detail}{where}")
        self.run_id = run_id
        self.error = error


class RunCanceled(StepwiseError):
    """The awaited run was canceled."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was canceled")
        self.run_id = run_id


class WaitTimeout(StepwiseError):
    """A wait for a run ran out of time; the run itself goes on."""

    def __init__(self, run_id: str, timeout: float) -> None:
        super().__init__(f"run {run_id} did not finish within {timeout:g}s")
        self.run_id = run_id
        self.timeout = timeout


class DeadlineExceeded(StepwiseError):
    """The run's deadline passed before it finished: the run is failed with this error, which a
    waiting client sees as the ``type`` of ``RunFailed.error``."""


class StepAttemptsExceeded(StepwiseError):
    """The run used up its hard cap of step attempts (a runaway loop of steps): the run is
    failed rather than allowed to grow its history forever."""


class CrashLoop(StepwiseError):
    """A run's worker died (or stalled past its lease) ``deaths`` times in a row without a
    step completing in between; ``steps`` were running (stored as started) when it last died.
    The run is failed instead of being handed to yet another worker to kill."""

    def __init__(self, deaths: int, steps: list[str], limit: int) -> None:
        if not steps:
            where = "before any step start was stored"
        elif len(steps) == 1:
            where = f"while step {steps[0]!r} was running"
        else:
            where = "while steps " + ", ".join(map(repr, steps)) + " were running"
        super().__init__(
            f"its worker died {deaths} times in a row {where}, with no step completed in "
            f"between (max recovery attempts: {limit})"
        )
        self.deaths = deaths
        self.steps = steps
        self.limit = limit
