"""A run resumed after a SIGKILL stays in its one trace, across real worker processes.

The workers export over OTLP/HTTP, as configured by the standard ``OTEL_*`` variables, to a
small receiver this test runs (aiohttp, the protobuf parsed by opentelemetry-proto); the
test process traces ``client.start`` into the in-memory exporter. The first worker finishes
two of three parallel steps and is killed in the third: its execution span never ends, so it
is never exported, but the spans of the two steps it finished are, under it. The second
worker's execution is a new span under the run's start span, in the same trace; it replays
the two steps and runs the third again.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus
from tests.tracing.spantree import SpanView, from_otlp, from_sdk, render

APP = Path(__file__).with_name("crash_flows.py")


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: the spans it was sent, in arrival order, each
    once (an exporter whose request timed out on a loaded machine sends its batch again)."""

    def __init__(self) -> None:
        self.spans: list[SpanView] = []
        self.url = ""

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        seen = {s.span_id for s in self.spans}
        self.spans.extend(s for s in from_otlp(body) if s.span_id not in seen)
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    def named(self, name: str) -> list[SpanView]:
        return [s for s in self.spans if s.name == name]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", found._traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}"
    yield found
    await runner.cleanup()


def _otel_env(receiver: Receiver, service: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # export within 50 ms of a span's end
        "NO_PROXY": "127.0.0.1",
    }


async def test_a_run_resumed_after_sigkill_is_one_trace(
    backend_url: str,
    procs: Procs,
    receiver: Receiver,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    first = procs.worker(
        APP, backend_url, name="worker-1", env=_otel_env(receiver, "worker-1"), ready=True
    )
    async with Client.connect(backend_url) as client:
        run = await client.start("traced-crash", {"gate": str(gate)})

        async def two_steps_exported() -> bool:
            return {s.name for s in receiver.spans} >= {"step a", "step b"}

        await async_wait_until(
            two_steps_exported, 60, lambda: f"steps a and b not exported\n{procs.tails()}"
        )
        first.kill()  # SIGKILL while step c waits for its gate
        gate.touch()
        procs.worker(APP, backend_url, name="worker-2", env=_otel_env(receiver, "worker-2"))
        finished = await client.wait_finished(run.id, timeout=60)
        assert finished.status is RunStatus.SUCCEEDED, procs.tails()
        assert finished.output == ["a", "b", "c"]
        assert finished.claims == 2

        async def resumed_exported() -> bool:
            return bool(receiver.named("run traced-crash"))

        await async_wait_until(
            resumed_exported, 60, lambda: f"the resumed execution not exported\n{procs.tails()}"
        )

    (start,) = from_sdk(spans.get_finished_spans(), service="test (client.start)")
    everything = [start, *receiver.spans]
    killed_parent = receiver.named("step a")[0].parent_id
    assert killed_parent is not None
    print(
        "\n"
        + render(
            everything,
            missing={
                killed_parent: ("run traced-crash [worker-1] SIGKILLed: never ended", start.span_id)
            },
        )
    )
    assert {s.trace_id for s in everything} == {start.trace_id}, "one trace"

    (resumed,) = receiver.named("run traced-crash")  # the killed execution never ended
    assert resumed.service == "worker-2"
    assert resumed.parent_id == start.span_id
    assert resumed.attributes["stepwise.claim"] == 2
    assert resumed.attributes["stepwise.outcome"] == "succeeded"
    replayed = sorted(a["stepwise.step"] for n, a in resumed.events if n == "step replayed")
    assert replayed == ["a", "b"]

    for name in ("step a", "step b"):  # finished by the first execution, before the kill
        (step,) = receiver.named(name)
        assert step.service == "worker-1"
        assert step.parent_id == killed_parent
    assert killed_parent not in {s.span_id for s in everything}
    (again,) = receiver.named("step c")  # interrupted by the kill: only the rerun ended
    assert again.service == "worker-2"
    assert again.parent_id == resumed.span_id
