"""The worker's Prometheus metrics, counted as an execution listener, and its endpoint.

Every run and step metric carries a ``workflow`` label. A worker executes only runs of the
workflows it registered, so the label's values are the names of its definitions: bounded,
whatever names runs are started with. With ``backlog`` the endpoint also serves the backlog
gauges (``stepwise.backlog``), which one process per database should serve.

Imported only when the worker serves a health port: prometheus_client and aiohttp come with
the ``worker`` extra, and a plain install runs a worker without them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from stepwise import backlog, endpoint
from stepwise.core.events import ExecutionListener

if TYPE_CHECKING:
    from aiohttp import web

    from stepwise.worker.worker import Worker


@dataclass(frozen=True, slots=True)
class _Labelled:
    """One workflow's children of the per-step metrics, made once: ``labels()`` takes a lock
    and builds a key, which on every step would cost more than the count itself."""

    workflow: str
    ok: Counter
    retrying: Counter
    failed: Counter
    replayed: Counter
    seconds: Histogram


class Metrics(ExecutionListener):
    """Counts what the engine does, by workflow and outcome; one registry per worker."""

    def __init__(self) -> None:
        self.registry = endpoint.process_registry()
        self.runs_started = Counter(
            "stepwise_runs_started",
            "Executions started (resumes included), by workflow",
            ["workflow"],
            registry=self.registry,
        )
        self.runs_finished = Counter(
            "stepwise_runs_finished",
            "Executions ended, by workflow and outcome",
            ["workflow", "outcome"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "stepwise_run_seconds",
            "Duration of executions, from the claim to the outcome (a run that sleeps ends "
            "one execution there), by workflow and outcome",
            ["workflow", "outcome"],
            registry=self.registry,
        )
        self.steps = Counter(
            "stepwise_steps",
            "Step attempts ended, by workflow and result",
            ["workflow", "result"],
            registry=self.registry,
        )
        self.steps_replayed = Counter(
            "stepwise_steps_replayed",
            "Completed steps returned from storage on replay, by workflow",
            ["workflow"],
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "stepwise_step_seconds",
            "Duration of step attempts, by workflow",
            ["workflow"],
            registry=self.registry,
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
        self._labelled: dict[str, _Labelled] = {}
        self._executing: dict[str, tuple[_Labelled, float]] = {}
        """Run id → its workflow's children and the start of its execution: the step hooks
        name the run only."""

    def _children(self, workflow: str) -> _Labelled:
        made = self._labelled.get(workflow)
        if made is None:
            made = self._labelled[workflow] = _Labelled(
                workflow,
                self.steps.labels(workflow, "ok"),
                self.steps.labels(workflow, "retrying"),
                self.steps.labels(workflow, "failed"),
                self.steps_replayed.labels(workflow),
                self.step_seconds.labels(workflow),
            )
        return made

    def _of(self, run_id: str) -> _Labelled:
        entry = self._executing.get(run_id)
        return self._children(backlog.OTHER) if entry is None else entry[0]

    def run_started(self, run_id: str, workflow: str, claims: int) -> None:
        self._executing[run_id] = (self._children(workflow), time.monotonic())
        self.runs_started.labels(workflow).inc()
        self.active_runs.inc()

    def step_replayed(self, run_id: str, key: str) -> None:
        self._of(run_id).replayed.inc()

    def step_finished(
        self, run_id: str, key: str, *, ok: bool, seconds: float, error: str | None, retrying: bool
    ) -> None:
        children = self._of(run_id)
        (children.ok if ok else children.retrying if retrying else children.failed).inc()
        children.seconds.observe(seconds)

    def run_diverged(self, run_id: str, workflow: str, missing: list[str], new: list[str]) -> None:
        self.divergences.labels(workflow).inc()

    def run_finished(self, run_id: str, outcome: str) -> None:
        entry = self._executing.pop(run_id, None)
        workflow = backlog.OTHER if entry is None else entry[0].workflow
        started = time.monotonic() if entry is None else entry[1]
        self.runs_finished.labels(workflow, outcome).inc()
        self.run_seconds.labels(workflow, outcome).observe(time.monotonic() - started)
        self.active_runs.dec()

    async def serve(
        self, worker: Worker, host: str, port: int, *, backlog_metrics: bool = False
    ) -> web.AppRunner:
        """Serve ``/healthz``, ``/readyz`` (the worker claims) and these metrics; with
        ``backlog_metrics``, the backlog gauges of the worker's database too. The counters of
        each workflow served start at 0; those by outcome appear with their first one."""
        for workflow in worker.registry.names():  # a labelled counter shows once it has a child
            self.runs_started.labels(workflow)
            self.divergences.labels(workflow)
            self._children(workflow)
        refresh = None
        if backlog_metrics:
            gauges = backlog.BacklogCollector(worker.backend, worker.registry.names())
            self.registry.register(gauges)
            refresh = gauges.refresh
        return await endpoint.serve(
            self.registry, host, port, ready=lambda: worker.ready, refresh=refresh
        )
