"""OpenTelemetry traces of runs (the ``otel`` extra): the one module that speaks to its API.

One trace per run. ``Client.start`` stores the run with a W3C ``traceparent``: the context of
its ``start <workflow>`` span, a child of the caller's current span when there is one. Every
execution of the run (its first claim, a resume after a sleep, a takeover after a SIGKILL) is a
``run <workflow>`` span whose parent is that stored context, so all of them, on any process,
land in the one trace; each step attempt is a ``step <key>`` span under its execution, current
while the step function runs (what the function traces nests under it). Replayed steps,
retries, sleeps and errors are events and statuses on those spans.

Without the extra, or while no tracer provider is configured, ``execution`` returns None and
the engine goes its usual way: one lookup of the tracer provider per execution and per start.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from stepwise.backends.base import RunRecord, StepRecord
from stepwise.core.events import ExecutionListener

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed: nothing is traced
    trace = None  # type: ignore[assignment]

TRACER_NAME = "stepwise"
_W3C = TraceContextTextMapPropagator() if trace is not None else None
_tracer_of: tuple[object, Any] = (None, None)
"""(the provider, our tracer or None): the answer of ``_tracer`` while the provider stays."""
_UNSET = (trace.ProxyTracerProvider, trace.NoOpTracerProvider) if trace is not None else ()
_NOTHING = contextlib.nullcontext()


def _tracer() -> Any:
    """Our tracer, or None while no tracer provider is configured (or the API is missing)."""
    global _tracer_of
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if provider is not _tracer_of[0]:
        tracer = None if isinstance(provider, _UNSET) else provider.get_tracer(TRACER_NAME)
        _tracer_of = (provider, tracer)
    return _tracer_of[1]


def _traceparent(span: Any) -> str | None:
    """The W3C ``traceparent`` of ``span``; None for an invalid (absent) one."""
    if trace is None or _W3C is None or not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent")


def _extracted(traceparent: str | None) -> Any:
    """The context that ``traceparent`` names, or None when it names none (absent, garbled)."""
    if trace is None or _W3C is None or not traceparent:
        return None
    context = _W3C.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


class Start:
    """Around storing a new run (``with starting(workflow) as start``): a ``start <workflow>``
    span when tracing, whose context the run keeps (``traceparent``); without a tracer
    provider, the caller's current context if it has one (a remote parent the operator
    attached, say), so workers that trace still join the caller's trace."""

    def __init__(self, tracer: Any, workflow: str) -> None:
        self.traceparent: str | None = None
        self._span: Any = None
        self._scope: Any = None
        if tracer is not None:
            self._scope = tracer.start_as_current_span(
                f"start {workflow}",
                kind=trace.SpanKind.PRODUCER,
                attributes={"stepwise.workflow": workflow},
            )

    def __enter__(self) -> Start:
        if self._scope is not None:
            self._span = self._scope.__enter__()
            self.traceparent = _traceparent(self._span)
        elif trace is not None:
            self.traceparent = _traceparent(trace.get_current_span())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._scope is not None:
            self._scope.__exit__(*exc)

    def stored(self, run_id: str, created: bool) -> None:
        if self._span is not None:
            self._span.set_attribute("stepwise.run_id", run_id)
            self._span.set_attribute("stepwise.created", created)


def starting(workflow: str) -> Start:
    """The ``Start`` of a run of ``workflow``."""
    return Start(_tracer(), workflow)


@contextlib.contextmanager
def remote_parent(traceparent: str | None) -> Iterator[None]:
    """Make the context that ``traceparent`` names current inside (nothing when it names
    none): what a WorkflowRun's ``stepwise.dev/traceparent`` annotation, or ``TRACEPARENT``
    for ``stepwise start``, asks."""
    context = _extracted(traceparent)
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def current_traceparent() -> str | None:
    """The current span's ``traceparent`` (the step's, inside a step): a child run keeps it."""
    return None if trace is None else _traceparent(trace.get_current_span())


def _run_parent(run: RunRecord) -> Any:
    """The parent of a run's executions: its stored context or, for a run stored without one
    (a schedule's, or a client's that did not trace), a remote parent derived from the run id,
    so its executions still share one trace, whose id is the run id's hex digits."""
    stored = _extracted(run.traceparent)
    if stored is not None:
        return stored
    ident = uuid.UUID(run.id).int
    parent = trace.SpanContext(
        trace_id=ident,
        span_id=(ident & 0xFFFF_FFFF_FFFF_FFFF) or 1,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def execution(
    run: RunRecord, memo: Mapping[str, StepRecord], listener: ExecutionListener
) -> RunTrace | None:
    """The trace of one execution of ``run``, which hears what ``listener`` hears and tells it
    on; None when nothing is traced."""
    tracer = _tracer()
    if tracer is None:
        return None
    return RunTrace(tracer, run, memo, listener)


def active(run_trace: RunTrace | None) -> AbstractContextManager[None]:
    """The execution's span current inside (the workflow's task inherits it); an exception
    that escapes ends it as an error."""
    return _NOTHING if run_trace is None else run_trace.active()


def concluded(
    run_trace: RunTrace | None, outcome: str, why: str | None, wake_at: datetime | None
) -> None:
    if run_trace is not None:
        run_trace.concluded(outcome, why, wake_at)


class RunTrace(ExecutionListener):
    """One execution's span and its steps' spans, kept from the listener's hooks, each of which
    it passes on to the listener it wraps (every hook: a test checks)."""

    def __init__(
        self,
        tracer: Any,
        run: RunRecord,
        memo: Mapping[str, StepRecord],
        inner: ExecutionListener,
    ) -> None:
        self._tracer = tracer
        self._memo = memo
        self._inner = inner
        self._base = {"stepwise.run_id": run.id, "stepwise.workflow": run.workflow}
        attributes: dict[str, Any] = {
            **self._base,
            "stepwise.claim": run.claims,
            "stepwise.attempt": run.attempt,
        }
        if run.version is not None:
            attributes["stepwise.version"] = run.version
        self.span = tracer.start_span(
            f"run {run.workflow}",
            context=_run_parent(run),
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
        )
        self.context = trace.set_span_in_context(self.span)
        self._steps: dict[str, tuple[Any, Any]] = {}
        """Step spans open in this execution, by key, with the token that made them current."""
        self._ended = False

    # ---- the listener's hooks, passed on ----
    def run_started(self, run_id: str, workflow: str, claims: int) -> None:
        self._inner.run_started(run_id, workflow, claims)

    def step_started(self, run_id: str, key: str, attempt: int) -> None:
        self._inner.step_started(run_id, key, attempt)
        attributes = {**self._base, "stepwise.step": key, "stepwise.step.attempt": attempt}
        span = self._tracer.start_span(f"step {key}", context=self.context, attributes=attributes)
        self._steps[key] = (span, otel_context.attach(trace.set_span_in_context(span)))

    def step_replayed(self, run_id: str, key: str) -> None:
        self._inner.step_replayed(run_id, key)
        self.span.add_event("step replayed", {"stepwise.step": key})

    def step_finished(
        self, run_id: str, key: str, *, ok: bool, seconds: float, error: str | None, retrying: bool
    ) -> None:
        self._inner.step_finished(
            run_id, key, ok=ok, seconds=seconds, error=error, retrying=retrying
        )
        opened = self._steps.pop(key, None)
        if opened is None:  # started by an earlier execution: a sleep, a signal, a child
            span = self._earlier_step(key, seconds)
        else:
            span, token = opened
            otel_context.detach(token)  # same task as the start: the step's own
        if not ok:
            kind, _, message = (error or "Error").partition(": ")
            span.add_event("exception", {"exception.type": kind, "exception.message": message})
            span.set_attribute("stepwise.step.retrying", retrying)
            span.set_status(trace.StatusCode.ERROR, error)
        span.end()

    def run_diverged(self, run_id: str, workflow: str, missing: list[str], new: list[str]) -> None:
        self._inner.run_diverged(run_id, workflow, missing, new)
        self.span.add_event("replay diverged", {"stepwise.missing": missing, "stepwise.new": new})

    def run_finished(self, run_id: str, outcome: str) -> None:
        self._inner.run_finished(run_id, outcome)

    # ---- the execution's span: current, then ended ----
    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        token = otel_context.attach(self.context)
        try:
            yield
        except BaseException as exc:
            self.span.record_exception(exc)
            self.concluded("crashed", f"{type(exc).__name__}: {exc}", None)
            raise
        finally:
            otel_context.detach(token)

    def concluded(self, outcome: str, why: str | None, wake_at: datetime | None) -> None:
        """End the execution's span with its outcome; steps still open were interrupted."""
        if self._ended:
            return
        self._ended = True
        for span, _ in self._steps.values():
            span.set_attribute("stepwise.step.interrupted", outcome)
            span.end()
        self._steps.clear()
        self.span.set_attribute("stepwise.outcome", outcome)
        if wake_at is not None and outcome == "sleeping":
            self.span.add_event("sleeping", {"stepwise.wake_at": wake_at.isoformat()})
        if outcome in ("failed", "crashed"):
            self.span.set_status(trace.StatusCode.ERROR, why)
        elif outcome == "retrying":
            self.span.add_event("retry", {"stepwise.error": why or ""})
        self.span.end()

    def _earlier_step(self, key: str, seconds: float) -> Any:
        """The span of a step that an earlier execution started (a durable sleep, a wait for
        a signal or a child) and this one finished: from its stored start to now."""
        stored = self._memo.get(key)
        begun = stored.started_at if stored is not None else None
        start_ns = int(begun.timestamp() * 1e9) if begun is not None else None
        if start_ns is None:
            start_ns = time.time_ns() - int(seconds * 1e9)
        attributes = {**self._base, "stepwise.step": key}
        if stored is not None and stored.wake_at is not None:
            attributes["stepwise.wake_at"] = stored.wake_at.isoformat()
        return self._tracer.start_span(
            f"step {key}", context=self.context, attributes=attributes, start_time=start_ns
        )
