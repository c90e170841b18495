"""The operator's Prometheus metrics: the mirror's counters, read when ``/metrics`` is scraped,
the process's own, and the backlog gauges of the database.

The mirror keeps plain counts (its ``stats()``, also the JSON of ``/healthz``); a collector
turns them into metric families at scrape time, so nothing is counted twice. On Kubernetes
the operator is the one process that serves the backlog gauges (``stepwise.backlog``): it runs
as one replica, and it runs while the workers are scaled to zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stepwise import backlog, endpoint
from stepwise.operator.mirror import Mirror

REQUEST_KINDS = ("status", "event", "delete")


class MirrorCollector(Collector):
    """``stepwise_operator_workflowruns``, ``…_refreshes_total``, ``…_api_requests_total``."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    def collect(self) -> Iterator[Metric]:
        stats = self.mirror.stats()
        yield GaugeMetricFamily(
            "stepwise_operator_workflowruns",
            "WorkflowRuns the operator follows.",
            value=stats["tracked"],
        )
        yield CounterMetricFamily(
            "stepwise_operator_refreshes",
            "Runs read from the database for a status.",
            value=stats["refreshes"],
        )
        requests = CounterMetricFamily(
            "stepwise_operator_api_requests",
            "Kubernetes API requests of the status mirror, by kind (status writes, Events, "
            "deletes).",
            labels=["kind"],
        )
        for kind in REQUEST_KINDS:
            requests.add_metric([kind], stats["requests"].get(kind, 0))
        yield requests


async def serve(
    mirror: Mirror, host: str, port: int, *, workflows: Sequence[str] = ()
) -> web.AppRunner:
    """Serve ``/healthz`` (with the mirror's counters), ``/readyz`` and ``/metrics``; the
    backlog gauges label ``workflows`` and those the workers registered."""
    registry = endpoint.process_registry()
    registry.register(MirrorCollector(mirror))
    gauges = backlog.BacklogCollector(mirror.client.backend, workflows)
    registry.register(gauges)
    return await endpoint.serve(
        registry,
        host,
        port,
        details=lambda: {"mirror": mirror.stats()},
        refresh=gauges.refresh,
    )
