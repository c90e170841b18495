"""The dashboard's aiohttp application and how ``stepwise dashboard`` serves it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from stepwise import endpoint
from stepwise.client.client import Client
from stepwise.dashboard import views
from stepwise.dashboard.hosts import guard

STATIC = Path(__file__).with_name("static")


def make_app(
    client: Client,
    *,
    allow_actions: bool = False,
    hosts: Sequence[str] = ("127.0.0.1",),
    allow_hosts: Sequence[str] = (),
) -> web.Application:
    """The dashboard over ``client``; Cancel and Retry only with ``allow_actions``. It answers
    only requests whose ``Host`` names one of ``hosts`` (those it binds), ``allow_hosts`` or
    localhost (``hosts.guard``)."""
    app = web.Application(middlewares=[guard(hosts, allow_hosts)])
    app[views.CLIENT] = client
    app[views.ALLOW_ACTIONS] = allow_actions
    app[views.TEMPLATES] = views.templates()
    app.add_routes(
        [
            web.get("/", views.runs_page, name="runs"),
            web.get("/runs/{run_id}", views.run_page, name="run"),
            web.post("/runs/{run_id}/cancel", views.action(lambda c, run_id: c.cancel(run_id))),
            web.post("/runs/{run_id}/retry", views.action(lambda c, run_id: c.retry(run_id))),
            web.get("/healthz", views.healthz),
            web.static("/static", STATIC),
        ]
    )
    return app


async def serve(
    client: Client,
    hosts: Sequence[str],
    port: int,
    *,
    allow_actions: bool,
    allow_hosts: Sequence[str] = (),
) -> web.AppRunner:
    """Serve the dashboard on ``port`` (0: a free one) of each of ``hosts``, to requests for
    those or ``allow_hosts``; the caller cleans it up."""
    app = make_app(client, allow_actions=allow_actions, hosts=hosts, allow_hosts=allow_hosts)
    return await endpoint.start(app, hosts, port)


def bound_port(runner: web.AppRunner) -> int:
    """The port a runner listens on (the one the system chose for port 0)."""
    return int(runner.addresses[0][1])
