"""Spans of runs executed in this process, on both backends, read from the SDK's in-memory
exporter: one trace from the caller's span through ``client.start`` to every execution (one
per claim: before and after a durable sleep) and every step attempt, retries, sleeps, replays
and errors included."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stepwise import Registry, RetryPolicy, RunStatus, workflow
from stepwise.backends.base import NewRun
from stepwise.core import tracing
from stepwise.core.events import ExecutionListener
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine
from tests.tracing.spantree import SpanView, from_sdk, render

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01, max_interval=0.05)


def _by_name(spans: list[SpanView], name: str) -> list[SpanView]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_ns)


async def test_one_trace_spans_start_every_execution_and_every_step_attempt(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    tried = 0

    def fetch(name: str) -> str:
        with trace.get_tracer("user-code").start_as_current_span(f"query {name}"):
            return name

    async def flaky() -> str:
        nonlocal tried
        tried += 1
        if tried == 1:
            raise ConnectionError("first try fails")
        return "c"

    @workflow("traced", registry=Registry())
    async def traced(ctx: Any) -> str:
        a, b, c = await asyncio.gather(
            ctx.step.run("fetch-a", fetch, "a"),
            ctx.step.run("fetch-b", fetch, "b"),
            ctx.step.run("flaky", flaky, retry=FAST),
        )
        await ctx.step.sleep("nap", 0.2)
        joined: str = await ctx.step.run("join", lambda: a + b + c)
        return joined

    with trace.get_tracer("caller").start_as_current_span("handle request"):
        run = await engine.run(traced)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == "abc"

    views = from_sdk(spans.get_finished_spans())
    print("\n" + render(views))
    (caller,) = _by_name(views, "handle request")
    assert {s.trace_id for s in views} == {caller.trace_id}, "one trace"

    (start,) = _by_name(views, "start traced")
    assert start.parent_id == caller.span_id
    assert start.attributes["stepwise.run_id"] == run.id
    stored = await engine.client.backend.get_run(run.id)
    assert stored is not None
    assert stored.traceparent is not None
    assert stored.traceparent.split("-")[1:3] == [f"{start.trace_id:032x}", f"{start.span_id:016x}"]

    first, second = _by_name(views, "run traced")  # one execution per claim
    assert first.parent_id == second.parent_id == start.span_id
    assert (first.attributes["stepwise.claim"], second.attributes["stepwise.claim"]) == (1, 2)
    assert first.attributes["stepwise.outcome"] == "sleeping"
    assert first.event_names() == ["sleeping"]
    assert second.attributes["stepwise.outcome"] == "succeeded"
    replayed = sorted(a["stepwise.step"] for n, a in second.events if n == "step replayed")
    assert replayed == ["fetch-a", "fetch-b", "flaky"]

    for name in ("fetch-a", "fetch-b"):
        (step,) = _by_name(views, f"step {name}")
        assert step.parent_id == first.span_id
        assert step.error is None
        (query,) = _by_name(views, f"query {name[-1]}")  # the step's own span, in its thread
        assert query.parent_id == step.span_id
    failed, retried = _by_name(views, "step flaky")
    assert failed.parent_id == retried.parent_id == first.span_id
    assert failed.attributes["stepwise.step.attempt"] == 1
    assert failed.attributes["stepwise.step.retrying"] is True
    assert failed.error == "ConnectionError: first try fails"
    assert failed.events == [
        ("exception", {"exception.type": "ConnectionError", "exception.message": "first try fails"})
    ]
    assert (retried.attributes["stepwise.step.attempt"], retried.error) == (2, None)
    # The three parallel steps overlap in time.
    a, b = _by_name(views, "step fetch-a")[0], _by_name(views, "step fetch-b")[0]
    assert max(a.start_ns, b.start_ns, failed.start_ns) < min(a.end_ns, b.end_ns, failed.end_ns)

    (nap,) = _by_name(views, "step nap")  # started by the first execution, ended by the second
    assert nap.parent_id == second.span_id
    assert nap.start_ns < second.start_ns <= nap.end_ns
    assert "stepwise.wake_at" in nap.attributes
    (join,) = _by_name(views, "step join")
    assert join.parent_id == second.span_id


async def test_a_failed_run_is_an_error_span(engine: Engine, spans: InMemorySpanExporter) -> None:
    @workflow("traced-failure", registry=Registry())
    async def failing(ctx: Any) -> None:
        await ctx.step.run("boom", lambda: 1 / 0, retry=RetryPolicy(max_attempts=1))

    run = await engine.run(failing)
    assert run.status is RunStatus.FAILED
    views = from_sdk(spans.get_finished_spans())
    (execution,) = _by_name(views, "run traced-failure")
    assert execution.attributes["stepwise.outcome"] == "failed"
    assert execution.error is not None
    assert "ZeroDivisionError" in execution.error
    (step,) = _by_name(views, "step boom")
    assert step.attributes["stepwise.step.retrying"] is False
    assert step.error == "ZeroDivisionError: division by zero"
    (start,) = _by_name(views, "start traced-failure")
    assert start.parent_id is None  # no span was current: the start is the trace's root
    assert execution.parent_id == start.span_id


async def test_without_a_tracer_provider_no_span_and_no_context_is_stored(engine: Engine) -> None:
    @workflow("untraced", registry=Registry())
    async def untraced(ctx: Any) -> int:
        one: int = await ctx.step.run("one", lambda: 1)
        return one

    run = await engine.run(untraced)
    stored = await engine.client.backend.get_run(run.id)
    assert stored is not None
    assert stored.traceparent is None


async def test_a_remote_parent_is_stored_without_a_tracer_provider(engine: Engine) -> None:
    """The operator need not trace for the workers to continue an annotation's trace."""

    @workflow("remote-parent", registry=Registry())
    async def remote(ctx: Any) -> None:
        return None

    engine.registry.add(remote)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.remote_parent(parent):
        started = await engine.client.start(remote)
    with tracing.remote_parent("garbage"):
        plain = await engine.client.start(remote)
    assert (await engine.client.backend.get_run(started.id)).traceparent == parent  # type: ignore[union-attr]
    assert (await engine.client.backend.get_run(plain.id)).traceparent is None  # type: ignore[union-attr]


async def test_a_run_without_a_stored_context_gets_a_trace_named_by_its_id(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    """A run a schedule (or an untraced client) started: its executions share one trace."""

    @workflow("no-context", registry=Registry())
    async def no_context(ctx: Any) -> None:
        await ctx.step.sleep("nap", 0.05)

    engine.registry.add(no_context)
    run, _ = await engine.client.backend.create_run(  # stored as a schedule's tick stores it
        NewRun(str(uuid.uuid4()), "no-context", None, "null")
    )
    await run_to_completion(engine.client, engine.registry, run.id, timeout=30)
    executions = _by_name(from_sdk(spans.get_finished_spans()), "run no-context")
    assert len(executions) == 2
    assert {f"{s.trace_id:032x}" for s in executions} == {run.id.replace("-", "")}
    assert executions[0].parent_id == executions[1].parent_id


def test_the_run_trace_passes_every_listener_hook_on() -> None:
    hooks = {
        name
        for name, member in inspect.getmembers(ExecutionListener, inspect.isfunction)
        if not name.startswith("_")
    }
    assert hooks <= set(vars(tracing.RunTrace)), "a new hook must be passed on by RunTrace"


async def test_a_child_run_continues_the_trace_from_its_parents_step(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    @workflow("traced-child", registry=engine.registry)
    async def child(ctx: Any) -> int:
        doubled: int = await ctx.step.run("double", lambda: 2 * ctx.input)
        return doubled

    @workflow("traced-parent", registry=engine.registry)
    async def parent(ctx: Any) -> int:
        result: int = await ctx.step.run_workflow(child, 21)
        return result

    stop = asyncio.Event()
    serving = asyncio.create_task(engine.worker().run(stop))
    try:
        run = await engine.client.start(parent)
        finished = await engine.client.wait_finished(run.id, timeout=30)
    finally:
        stop.set()
        await serving
    assert finished.output == 42
    views = from_sdk(spans.get_finished_spans())
    print("\n" + render(views))
    (start,) = _by_name(views, "start traced-parent")
    assert {s.trace_id for s in views} == {start.trace_id}, "one trace"
    (child_step,) = _by_name(views, "step traced-child")
    executions = _by_name(views, "run traced-child")
    assert [s.parent_id for s in executions] == [child_step.span_id]
    (double,) = _by_name(views, "step double")
    assert double.parent_id == executions[0].span_id
    first, resumed = _by_name(views, "run traced-parent")
    assert child_step.parent_id == first.span_id
    assert [a for n, a in resumed.events if n == "step replayed"] == [
        {"stepwise.step": "traced-child"}
    ]


async def test_a_wait_for_a_signal_spans_the_executions_it_parked_and_resumed(
    engine: Engine, spans: InMemorySpanExporter
) -> None:
    @workflow("traced-signal", registry=engine.registry)
    async def waits(ctx: Any) -> Any:
        return await ctx.step.wait_for_signal("go")

    run = await engine.client.start(waits)
    finishing = asyncio.create_task(
        run_to_completion(engine.client, engine.registry, run.id, timeout=30)
    )
    deadline = asyncio.get_running_loop().time() + 30
    while not _by_name(from_sdk(spans.get_finished_spans()), "run traced-signal"):
        assert asyncio.get_running_loop().time() < deadline, "the run never parked"
        await asyncio.sleep(0.02)
    await engine.client.signal(run.id, "go", 7)
    assert (await finishing).output == 7

    views = from_sdk(spans.get_finished_spans())
    parked, resumed = _by_name(views, "run traced-signal")
    assert parked.attributes["stepwise.outcome"] == "sleeping"
    waits_for = {s.parent_id: s for s in _by_name(views, "step go")}
    assert set(waits_for) == {parked.span_id, resumed.span_id}
    waiting, received = waits_for[parked.span_id], waits_for[resumed.span_id]
    assert waiting.attributes["stepwise.step.interrupted"] == "sleeping"
    assert received.start_ns <= parked.end_ns < resumed.start_ns <= received.end_ns
    assert received.error is None
