"""``stepwise operator``: kopf embedded in this process, the status mirror beside it.

kopf runs standalone (no peering objects: the chart runs exactly one operator with the
Recreate strategy) with its handler progress in annotations under ``operator.stepwise.dev/``,
so the status stays ours; it writes no diff base (``persistence``: the status says whether a
create was handled). The health port serves ``/healthz`` (liveness, with the mirror's counters),
``/readyz`` and ``/metrics`` (``stepwise.endpoint``, as a worker does).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

import kopf

from stepwise.client.client import Client
from stepwise.operator import handlers, kubeapi, persistence
from stepwise.operator import schedules as schedules  # registers its timer
from stepwise.operator import signals as signals  # registers its handler
from stepwise.operator.mirror import Mirror

FINALIZER = "stepwise.dev/cancel-run"


_QUIET = ("Handler 'observe' succeeded", "Timer 'tick' succeeded")
"""Successes not worth a line: on every watch event, on every schedule's every tick."""


class _ObjectLogs(logging.Filter):
    """kopf's per-resource log lines, made readable under the CLI's plain format: each says
    which resource (``[namespace/name]``, as kopf's own formatter would), and the successes
    of ``observe`` are dropped: it runs on every watch event of every WorkflowRun, and kopf
    logs each handler success at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(_QUIET):
            return False
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            record.msg = f"[{ref.get('namespace')}/{ref.get('name')}] {record.msg}"
        return True


def settings(instance: str) -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    configured.peering.standalone = True
    configured.persistence.finalizer = FINALIZER
    configured.persistence.progress_storage = persistence.QuietProgress()
    configured.persistence.diffbase_storage = persistence.StatusRunDiffBase()
    configured.posting.reporting_component = kubeapi.COMPONENT
    configured.posting.reporting_instance = instance
    return configured


async def run(
    *,
    database_url: str,
    schema: str,
    namespaces: Sequence[str],
    all_namespaces: bool,
    health_port: int,
    health_host: str = "0.0.0.0",
    wait_for_database: float = 0.0,
    metrics_workflows: Sequence[str] = (),
) -> int:
    """Serve WorkflowRuns in ``namespaces`` (or all of them) until SIGTERM/SIGINT. The backlog
    gauges name ``metrics_workflows`` even while no worker has registered them."""
    logging.getLogger("kopf.objects").addFilter(_ObjectLogs())
    instance = socket.gethostname()
    async with (
        kubeapi.connect(instance=instance) as kube,
        Client.connect(database_url, schema=schema, wait_for_database=wait_for_database) as client,
    ):
        mirror = Mirror(client, kube)
        endpoint = None
        if health_port:
            from stepwise.operator import metrics  # aiohttp and prometheus_client: only when served

            endpoint = await metrics.serve(
                mirror, health_host, health_port, workflows=metrics_workflows
            )
        following = asyncio.create_task(mirror.run(), name="stepwise mirror")
        await asyncio.sleep(0)  # let it start, so kopf counts its tasks as not its own
        operating = asyncio.create_task(
            kopf.operator(
                registry=handlers.registry,
                settings=settings(instance),
                memo=handlers.OperatorState(client, mirror),
                standalone=True,
                clusterwide=all_namespaces,
                namespaces=() if all_namespaces else list(namespaces),
            ),
            name="kopf",
        )
        try:
            await asyncio.wait({following, operating}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            following.cancel()
            operating.cancel()
            outcomes = await asyncio.gather(following, operating, return_exceptions=True)
            if endpoint is not None:
                await endpoint.cleanup()
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome  # the mirror or kopf failed: exit non-zero, the pod restarts
    return 0
