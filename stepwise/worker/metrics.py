"""The worker's Prometheus metrics, counted as an execution listener, and its endpoint.

Imported only when the worker serves a health port: prometheus_client and aiohttp come with
the ``worker`` extra, and a plain install runs a worker without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stepwise import endpoint
from stepwise.core.events import ExecutionListener

if TYPE_CHECKING:
    from aiohttp import web

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
        self.divergences = Counter(
            "stepwise_replay_divergences",
            "Executions whose replay diverged from the run's stored history, by workflow",
            ["workflow"],
            registry=self.registry,
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

    def run_diverged(self, run_id: str, workflow: str, missing: list[str], new: list[str]) -> None:
        self.divergences.labels(workflow).inc()

    def run_finished(self, run_id: str, outcome: str) -> None:
        self.runs_finished.labels(outcome).inc()
        self.active_runs.dec()

    async def serve(self, worker: Worker, host: str, port: int) -> web.AppRunner:
        """Serve ``/healthz``, ``/readyz`` (the worker claims) and these metrics."""
        return await endpoint.serve(self.registry, host, port, ready=lambda: worker.ready)
