"""Health and Prometheus metrics over HTTP: ``/healthz``, ``/readyz`` and ``/metrics``.

A tiny asyncio server on the worker's own loop: if the loop is stuck, the liveness probe
fails, which is exactly what it should report.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stepwise.core.events import ExecutionListener

if TYPE_CHECKING:
    from stepwise.worker.worker import Worker


class Metrics(ExecutionListener):
    """Counts what the engine does, labelled by outcome; one registry per worker."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs_started = Counter(
            "stepwise_runs_started", "Executions started (resumes included)", registry=self.registry
        )
        self.runs_finished = Counter(
            "stepwise_runs_finished",
            "Executions ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.steps = Counter(
            "stepwise_steps", "Step attempts ended, by result", ["result"], registry=self.registry
        )
        self.steps_replayed = Counter(
            "stepwise_steps_replayed",
            "Completed steps returned from storage on replay",
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "stepwise_step_seconds", "Duration of step attempts", registry=self.registry
        )
        self.active_runs = Gauge(
            "stepwise_active_runs", "Runs this worker is executing", registry=self.registry
        )

    def run_started(self, run_id: str, workflow: str, claims: int) -> None:
        self.runs_started.inc()
        self.active_runs.inc()

    def step_replayed(self, run_id: str, key: str) -> None:
        self.steps_replayed.inc()

    def step_finished(
        self, run_id: str, key: str, *, ok: bool, seconds: float, error: str | None, retrying: bool
    ) -> None:
        self.steps.labels("ok" if ok else ("retrying" if retrying else "failed")).inc()
        self.step_seconds.observe(seconds)

    def run_finished(self, run_id: str, outcome: str) -> None:
        self.runs_finished.labels(outcome).inc()
        self.active_runs.dec()


async def serve(worker: Worker, metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Start the endpoint; the caller closes the returned server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("ascii", "replace")
            status, ctype, body = _route(path, worker, metrics)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, host, port)


def _route(path: str, worker: Worker, metrics: Metrics) -> tuple[str, str, bytes]:
    if path == "/healthz":
        return "200 OK", "text/plain", b"ok\n"
    if path == "/readyz":
        if worker.ready:
            return "200 OK", "text/plain", b"ready\n"
        return "503 Service Unavailable", "text/plain", b"not ready\n"
    if path == "/metrics":
        return "200 OK", CONTENT_TYPE_LATEST, generate_latest(metrics.registry)
    return "404 Not Found", "text/plain", b"not found\n"
