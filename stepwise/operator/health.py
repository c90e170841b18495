"""The operator's HTTP endpoint: ``/healthz`` (liveness) and ``/metrics`` (Prometheus text).

It runs on the operator's own event loop, so a stuck loop fails the liveness probe, which is
what the probe is for. The metrics are the mirror's counters, written in the Prometheus text
format by hand: the operator's install does not carry a metrics library.
"""

from __future__ import annotations

from aiohttp import web

from stepwise.operator.mirror import Mirror


def exposition(mirror: Mirror) -> str:
    stats = mirror.stats()
    lines = [
        "# HELP stepwise_operator_workflowruns WorkflowRuns the operator follows.",
        "# TYPE stepwise_operator_workflowruns gauge",
        f"stepwise_operator_workflowruns {stats['tracked']}",
        "# HELP stepwise_operator_refreshes_total Runs read from the database for a status.",
        "# TYPE stepwise_operator_refreshes_total counter",
        f"stepwise_operator_refreshes_total {stats['refreshes']}",
        "# HELP stepwise_operator_api_requests_total Kubernetes API requests of the status "
        "mirror, by kind (status writes, Events, deletes).",
        "# TYPE stepwise_operator_api_requests_total counter",
    ]
    for kind in ("status", "event", "delete"):
        lines.append(
            f'stepwise_operator_api_requests_total{{kind="{kind}"}} '
            f"{stats['requests'].get(kind, 0)}"
        )
    return "\n".join(lines) + "\n"


async def serve(mirror: Mirror, host: str, port: int) -> web.AppRunner:
    """Start serving; the caller cleans the returned runner up."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"mirror": mirror.stats()})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=exposition(mirror), content_type="text/plain")

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/metrics", metrics)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
