"""The client is the API: a user gets a worker from a client, and the operator needs nothing
but client methods (``find``, ``stored``, ``watch``, ``waiting_reason``), on both backends."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from typing import Any

from stepwise import Client, Registry, RunStatus, Worker, default_registry, workflow
from stepwise.operator import handlers, mirror

NO_ID = "4b0e6a8e-1c5b-4d5e-9a57-3f1e0c2f7d11"


async def test_a_worker_from_a_client_runs_the_client_s_runs(backend_url: str) -> None:
    registry = Registry()

    @workflow("greet", registry=registry)
    async def greet(ctx: Any) -> str:
        return str(await ctx.step.run("hello", lambda: f"hello {ctx.input}"))

    async with Client.connect(backend_url) as client:
        run = await client.start("greet", "you")
        stop = asyncio.Event()
        serving = asyncio.create_task(Worker(client, registry, poll_interval=0.05).run(stop))
        try:
            assert await client.wait(run.id, timeout=30) == "hello you"
        finally:
            stop.set()
            await serving
        assert Worker(client).registry is default_registry


async def test_find_and_stored_say_none_for_an_unknown_run(backend_url: str) -> None:
    async with Client.connect(backend_url) as client:
        assert await client.find(NO_ID) is None
        assert await client.stored(NO_ID) is None
        run = await client.start("nobody-serves-this", {"n": 1})
        found = await client.find(run.id)
        assert found is not None
        assert (found.id, found.input) == (run.id, {"n": 1})
        stored = await client.stored(run.id)
        assert stored is not None
        record, steps = stored
        assert (record.id, record.status, steps) == (run.id, RunStatus.PENDING, [])
        assert json.loads(record.input) == {"n": 1}  # as stored: JSON text
        reason = "no live worker serves workflow 'nobody-serves-this'"
        assert await client.waiting_reason(record) == reason
        assert await client.waiting_reason(run) == reason


async def test_watch_reports_a_run_that_changed(backend_url: str) -> None:
    """Postgres pushes the id; SQLite answers ``None`` ("re-read everything") after a poll."""
    async with Client.connect(backend_url) as client:
        run = await client.start("nobody-serves-this")
        async with client.watch() as changes:
            await changes.next(0)  # subscribed: what came before is not this test's
            await client.cancel(run.id)
            seen: set[str] | None = set()
            for _ in range(50):
                seen = await changes.next(0.2)
                if seen is None or run.id in seen:
                    break
        assert seen is None or run.id in seen, seen


def test_the_operator_reaches_the_database_only_through_client_methods() -> None:
    for module in (handlers, mirror):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        reaching = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "backend"
        ]
        assert not reaching, f"{module.__name__} uses .backend on lines {reaching}"
