"""The operator's Prometheus metrics: the mirror's counters, read when ``/metrics`` is scraped.

The mirror keeps plain counts (its ``stats()``, also the JSON of ``/healthz``); a collector
turns them into metric families at scrape time, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stepwise import endpoint
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


async def serve(mirror: Mirror, host: str, port: int) -> web.AppRunner:
    """Serve ``/healthz`` (with the mirror's counters), ``/readyz`` and ``/metrics``."""
    registry = CollectorRegistry()
    registry.register(MirrorCollector(mirror))
    return await endpoint.serve(registry, host, port, details=lambda: {"mirror": mirror.stats()})
