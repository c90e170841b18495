"""A worker started before its database can be reached waits for it, as the chart's workers do
while the bundled PostgreSQL starts; one that waits in vain exits with one line."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stepwise import Client
from tests.plugins.procs import Procs

FLOWS = Path(__file__).with_name("flows.py")

pytestmark = pytest.mark.postgres

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _forward_to(host: str, port: int) -> Handler:
    """A connection handler that pipes both ways to ``host:port``."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    return handle


async def test_a_worker_waits_for_a_database_that_comes_up_late(
    procs: Procs, postgres_url: str
) -> None:
    real = urlsplit(postgres_url)
    assert real.hostname
    assert real.port
    port = _free_port()  # nothing listens here until the "database" comes up
    late_url = postgres_url.replace(f"@{real.hostname}:{real.port}/", f"@127.0.0.1:{port}/")
    worker = procs.worker(FLOWS, late_url, args=["--wait-for-database", "120"])
    worker.wait_for_log("trying again", timeout=60)
    assert worker.alive

    forwarder = await asyncio.start_server(_forward_to(real.hostname, real.port), "127.0.0.1", port)
    async with forwarder, Client.connect(postgres_url, wait_for_database=60) as client:
        run = await client.start("robust-echo", {"n": 1})
        output = await client.wait(run.id, timeout=60)
        worker.kill()  # before the forwarder closes under its connections
    assert output["input"] == {"n": 1}


def test_a_worker_that_waits_in_vain_exits_with_one_line(procs: Procs) -> None:
    url = f"postgresql://u:secret@127.0.0.1:{_free_port()}/x"
    worker = procs.worker(FLOWS, url, args=["--wait-for-database", "1"])
    assert worker.wait(timeout=60) == 2
    log = worker.log()
    assert "trying again" in log
    assert "Traceback" not in log
    assert log.rstrip().splitlines()[-1].startswith("stepwise: error: cannot reach the database at")
    assert "secret" not in log
