"""The backlog gauges: runs not finished, per workflow, read from the database when scraped.

prometheus_client collects synchronously and the backend is async, so the endpoint awaits
``refresh`` before it renders a scrape, and ``collect`` yields what the last read found. A
read happens at most once per ``interval`` seconds, however many scrapers ask (concurrent
scrapes share one read): one cheap query (``Backend.active_runs``) per interval per serving
process. One process per database serves these gauges (two would only duplicate the series):
the operator on Kubernetes (one replica, and it runs while workers are scaled to zero), else
a worker started with ``--backlog-metrics``.

Labels stay bounded: a workflow is named when the serving process knows it or a worker has
registered it; the runs of every other name count under ``workflow="_other"``. A failed read
yields no gauges until the next one succeeds (an autoscaler had better see nothing than a
stale backlog), logs a warning and counts in ``stepwise_backlog_read_failures_total``; every
read counts in ``stepwise_backlog_reads_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stepwise.backends.base import ActiveRuns, Backend
from stepwise.errors import DatabaseDamaged, DatabaseUnavailable

log = logging.getLogger(__name__)

OTHER = "_other"
"""The ``workflow`` label of the runs of workflows no process knows."""

DEFAULT_INTERVAL = 10.0
"""Seconds a read serves scrapes: at most one query per scrape of a 10 s (or longer) scrape
interval, and a backlog at most that old."""

STATUSES = ("pending", "running", "sleeping")


class BacklogCollector(Collector):
    """``stepwise_runs{workflow,status}`` and ``stepwise_backlog{workflow}`` of one database."""

    def __init__(
        self, backend: Backend, known: Collection[str] = (), interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.backend = backend
        self.known = sorted(known)
        self.interval = interval
        self.reads = 0
        self.failures = 0
        self._counts: list[ActiveRuns] | None = None
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the counts again, unless the last read is younger than ``interval``."""
        async with self._lock:
            if self._read_at is not None and time.monotonic() - self._read_at < self.interval:
                return
            self.reads += 1
            try:
                self._counts = await self.backend.active_runs(self.known)
            except (DatabaseUnavailable, DatabaseDamaged) as exc:
                self._counts = None
                self.failures += 1
                log.warning("cannot read the backlog for /metrics: %s", exc)
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "stepwise_backlog_reads",
            "Reads of the backlog gauges from the database (at most one per interval).",
            value=self.reads,
        )
        yield CounterMetricFamily(
            "stepwise_backlog_read_failures",
            "Reads of the backlog gauges that failed (the database unavailable or damaged).",
            value=self.failures,
        )
        if self._counts is None:
            return
        runs = GaugeMetricFamily(
            "stepwise_runs",
            "Runs not finished, by workflow and status (pending, running, sleeping).",
            labels=["workflow", "status"],
        )
        backlog = GaugeMetricFamily(
            "stepwise_backlog",
            "Pending and sleeping runs whose time has come, by workflow: what workers could "
            "claim now.",
            labels=["workflow"],
        )
        for counts in self._counts:
            workflow = OTHER if counts.workflow is None else counts.workflow
            for status in STATUSES:
                runs.add_metric([workflow, status], getattr(counts, status))
            backlog.add_metric([workflow], counts.due)
        yield runs
        yield backlog
