"""Connections cut by the server mid-use must read as "the database is away", nothing else.

What a Postgres restart does to a busy worker, reduced to its core: the server terminates
the backend's connections while queries are in flight. Every failure the backend lets out
must be ``DatabaseUnavailable`` (which callers retry); anything else reaches the engine as an
unforeseen fault, and the backend must work again once the connections are replaced.
"""

from __future__ import annotations

import asyncio
import collections
from urllib.parse import urlsplit

from harness.postgres import PostgresServer
from harness.workers import async_wait_until
from stepwise.backends import open_backend
from stepwise.errors import DatabaseUnavailable

ROUNDS = 30
READERS = 5
READS = 20
NO_SUCH_RUN = "00000000-0000-0000-0000-000000000000"


async def test_connections_terminated_mid_query_read_as_unavailable(
    pg_server: PostgresServer, postgres_url: str
) -> None:
    database = urlsplit(postgres_url).path.lstrip("/")
    backend = open_backend(postgres_url)
    await backend.open()
    outcomes: collections.Counter[str] = collections.Counter()

    async def read() -> None:
        for _ in range(READS):
            try:
                await backend.get_run(NO_SUCH_RUN)
                outcomes["ok"] += 1
            except DatabaseUnavailable:
                outcomes["unavailable"] += 1
            except Exception as exc:
                outcomes[f"{type(exc).__module__}.{type(exc).__name__}: {exc}"] += 1

    try:
        for _ in range(ROUNDS):
            terminate = asyncio.to_thread(
                pg_server.psql,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
            )
            await asyncio.gather(terminate, *(read() for _ in range(READERS)))

        async def answers_again() -> bool:
            try:
                return await backend.get_run(NO_SUCH_RUN) is None
            except DatabaseUnavailable:
                return False

        await async_wait_until(answers_again, 10, "the backend answers again")
    finally:
        await backend.close()
    unexpected = {kind: n for kind, n in outcomes.items() if kind not in ("ok", "unavailable")}
    assert not unexpected, f"unforeseen errors out of the backend: {unexpected}; all: {outcomes}"
