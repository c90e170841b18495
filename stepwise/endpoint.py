"""The HTTP endpoint of a long-running stepwise process (worker, operator).

``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics`` (Prometheus text of one
``prometheus_client`` registry), served by aiohttp on the process's own event loop: if the
loop is stuck, the liveness probe fails, which is what the probe is for.

aiohttp and prometheus_client come with the ``worker`` and ``operator`` extras, not with a
plain install: a process imports this module only when its health port is set. ``start``
serves any aiohttp app (the dashboard's too, whose extra has no prometheus_client).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def process_registry() -> CollectorRegistry:
    """A registry holding the process's own metrics: prometheus_client's process collector
    (``process_*``: CPU seconds, resident memory, open file descriptors, start time, read
    from ``/proc``) and platform collector (``python_info``)."""
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

    made = CollectorRegistry()
    ProcessCollector(registry=made)
    PlatformCollector(registry=made)
    return made


async def serve(
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    ready: Callable[[], bool] = lambda: True,
    details: Callable[[], dict[str, Any]] | None = None,
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> web.AppRunner:
    """Start serving; the caller cleans the returned runner up. ``/healthz`` answers ``ok``,
    or the JSON of ``details()``; ``/readyz`` answers 503 while ``ready()`` is false.
    ``/metrics`` awaits ``refresh()`` first: collectors are synchronous, so what they read
    from the database is read there (``stepwise.backlog``)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def healthz(request: web.Request) -> web.Response:
        if details is None:
            return web.Response(text="ok\n")
        return web.json_response(details())

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def metrics(request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.add_routes(
        [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
    )
    return await start(app, [host], port)


async def start(app: web.Application, hosts: Sequence[str], port: int) -> web.AppRunner:
    """Serve ``app`` on ``port`` of each of ``hosts`` from the running loop (the caller's
    signal handlers stay in place, no access log); the caller cleans the runner up."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        for host in hosts:
            await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
