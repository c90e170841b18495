"""The dashboard's pages. Each page has a fragment URL (``?part=live``) that renders only
its live part; the page's script polls it and swaps it in, so the same template renders the
first view and every update and no JSON shape is kept in step with the HTML.

Actions (Cancel, Retry) exist only with ``allow_actions``, and only as POSTs that carry the
``X-Stepwise-Action`` header: a page on another site can make a browser send a form to
127.0.0.1, but not with a custom header, so the dashboard's own buttons are the only way in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from stepwise.backends.base import RunStatus
from stepwise.client.client import Client, Run
from stepwise.core import tracebacks
from stepwise.dashboard import filters, timeline
from stepwise.errors import AmbiguousRunId, InvalidArgument, RunNotFound, RunNotRetryable

PAGE_SIZE = 50
LOG_LINES = 200
"""The last log lines a run's page shows (``stepwise runs logs`` prints them all)."""
PAYLOAD_CHARS = 64_000
"""Longest input, output or step output a page shows (a run may store megabytes, and a page
re-renders every two seconds); ``stepwise runs show --json`` prints it all."""
ACTION_HEADER = "X-Stepwise-Action"
CLIENT: web.AppKey[Client] = web.AppKey("client", Client)
ALLOW_ACTIONS: web.AppKey[bool] = web.AppKey("allow_actions", bool)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("templates", jinja2.Environment)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def templates() -> jinja2.Environment:
    """The package's templates, HTML-escaped by default."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("stepwise.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pretty"] = pretty
    env.filters["stamp"] = _stamp
    env.filters["seconds"] = _seconds
    env.filters["error_text"] = tracebacks.render
    env.filters["level"] = logging.getLevelName
    return env


def _render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    """``name`` (``runs.html``), or only its live part (``runs_live.html``) for ``?part=live``."""
    if request.query.get("part") == "live" and status == 200:
        name = name.replace(".html", "_live.html")
    template = request.app[TEMPLATES].get_template(name)
    html = template.render(allow_actions=request.app[ALLOW_ACTIONS], **context)
    return web.Response(text=html, status=status, content_type="text/html")


async def runs_page(request: web.Request) -> web.Response:
    """Runs, newest first, filtered by workflow, status and time window, a page at a time."""
    client = request.app[CLIENT]
    try:
        chosen = filters.read(request.query)
        found = await client.list(limit=PAGE_SIZE, **chosen.list_arguments(datetime.now(UTC)))
    except InvalidArgument as exc:
        return _render(request, "runs.html", 400, filters=filters.Filters(), problem=str(exc))
    return _render(
        request,
        "runs.html",
        filters=chosen,
        runs=found,
        next_cursor=found.next_cursor,
        statuses=[status.value for status in RunStatus],
        since_choices=filters.SINCE_CHOICES,
        problem=None,
    )


async def run_page(request: web.Request) -> web.Response:
    """One run: input, output, error, the step timeline and table, signals, children."""
    client = request.app[CLIENT]
    try:
        run = await client.get(await client.resolve(request.match_info["run_id"]))
    except (RunNotFound, AmbiguousRunId) as exc:
        return _render(request, "missing.html", 404, problem=str(exc))
    steps = await client.steps(run.id)
    now = datetime.now(UTC)
    return _render(
        request,
        "run.html",
        run=run,
        steps=steps,
        timeline=timeline.layout(run, steps, now),
        attempts=await client.attempts(run.id),
        signals=await client.signals(run.id),
        children=await client.list(parent_id=run.id, limit=PAGE_SIZE),
        waiting=await client.waiting_reason(run),
        logs=await client.log_tail(run.id, LOG_LINES),
        log_lines=LOG_LINES,
    )


def action(do: Callable[[Client, str], Awaitable[Run]]) -> Handler:
    """A POST that applies ``do`` to the run and answers its new status as JSON."""

    async def handle(request: web.Request) -> web.Response:
        if not request.app[ALLOW_ACTIONS]:
            return web.json_response(
                {"error": "actions are off: start the dashboard with --allow-actions"}, status=403
            )
        if request.headers.get(ACTION_HEADER) != "1":
            return web.json_response({"error": f"missing the {ACTION_HEADER} header"}, status=403)
        client = request.app[CLIENT]
        try:
            run = await do(client, await client.resolve(request.match_info["run_id"]))
        except (RunNotFound, AmbiguousRunId) as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except RunNotRetryable as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"id": run.id, "status": run.status.value})

    return handle


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def pretty(value: Any) -> str:
    """``value`` as indented JSON, cut after ``PAYLOAD_CHARS`` characters with a note."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) <= PAYLOAD_CHARS:
        return text
    return (
        f"{text[:PAYLOAD_CHARS]}\n… cut at {PAYLOAD_CHARS:,} of {len(text):,} characters: "
        "stepwise runs show --json prints it all"
    )


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
