"""Migrations and named queries, proven on real databases.

Migrations on an empty database give the shared schema; applying them again, or from several
instances at once, changes nothing; both dialects ship the same numbered migrations; every
named query parses and is used by its backend (no dead SQL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from stepwise.backends import migrations, open_backend
from stepwise.backends.sqlfiles import load_queries
from stepwise.backends.sqlite.backend import SqliteBackend
from tests.backends.conftest import BackendFactory

DIALECTS = ["sqlite", "postgres"]
PG_SCHEMA = "stepwise"

# The logical columns of the shared schema (schema notes); both dialects have exactly these.
EXPECTED_COLUMNS = {
    "stepwise_migrations": {"version", "name", "applied_at"},
    "runs": {
        "id", "workflow", "version", "status", "input", "output", "error", "idempotency_key",
        "attempt", "claims", "lease_token", "lease_owner", "lease_expires_at", "deadline_at",
        "available_at", "created_at", "started_at", "finished_at", "updated_at",
        "first_attempt", "forked_from",
        "recoveries", "progress_at_claim", "warning", "scheduled_at", "concurrency_key",
        "parent_id", "parent_step", "wake_pending", "traceparent",
    },
    "steps": {
        "seq", "run_id", "key", "status", "output", "error", "attempts", "started_at",
        "finished_at", "wake_at", "signal", "child_id",
    },
    "workers": {
        "id", "hostname", "workflows", "concurrency", "started_at", "heartbeat_at", "limits",
        "versions",
    },
    "run_attempts": {"run_id", "attempt", "status", "error", "finished_at", "retried_at"},
    "schedules": {
        "name", "workflow", "cron", "timezone", "input", "starting_deadline", "paused",
        "next_fire_at", "last_fired_at", "created_at", "updated_at",
    },
    "signals": {
        "seq", "run_id", "name", "payload", "idempotency_key", "sent_at", "delivered_to",
        "delivered_at",
    },
    "run_logs": {
        "run_id", "seq", "at", "level", "logger", "step", "attempt", "ordinal", "message",
        "dropped",
    },
}  # fmt: skip

Schema = dict[str, set[str]]


async def schema_of(url: str) -> Schema:
    """Tables (stepwise's own) and their column names at ``url``."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = $1",
            PG_SCHEMA,
        )
    finally:
        await conn.close()
    schema: Schema = {}
    for row in rows:
        schema.setdefault(row["table_name"], set()).add(row["column_name"])
    return schema


async def applied_of(url: str) -> list[tuple[int, str, str]]:
    """Rows of ``stepwise_migrations``: (version, name, applied_at as text)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            query = "SELECT version, name, applied_at FROM stepwise_migrations ORDER BY version"
            return [(v, n, str(a)) for v, n, a in conn.execute(query)]
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            f"SELECT version, name, applied_at FROM {PG_SCHEMA}.stepwise_migrations "
            "ORDER BY version"
        )
    finally:
        await conn.close()
    return [(r["version"], r["name"], str(r["applied_at"])) for r in rows]


def shipped(dialect: str) -> list[tuple[int, str]]:
    found = migrations.discover(f"stepwise.backends.{dialect}.migrations")
    return [(m.version, m.name) for m in found]


async def test_migrations_on_an_empty_database_give_the_schema(
    backend_factory: BackendFactory, backend_url: str
) -> None:
    await backend_factory()
    assert await schema_of(backend_url) == EXPECTED_COLUMNS
    dialect = "sqlite" if backend_url.startswith("sqlite") else "postgres"
    assert [(v, n) for v, n, _ in await applied_of(backend_url)] == shipped(dialect)


async def test_applying_the_migrations_again_changes_nothing(
    backend_factory: BackendFactory, backend_url: str
) -> None:
    await backend_factory()
    applied = await applied_of(backend_url)
    schema = await schema_of(backend_url)
    await backend_factory()
    await asyncio.gather(*(backend_factory() for _ in range(3)))
    assert await applied_of(backend_url) == applied
    assert await schema_of(backend_url) == schema


async def test_concurrent_first_opens_apply_each_migration_once(
    backend_factory: BackendFactory, backend_url: str
) -> None:
    await asyncio.gather(*(backend_factory() for _ in range(4)))
    dialect = "sqlite" if backend_url.startswith("sqlite") else "postgres"
    assert [(v, n) for v, n, _ in await applied_of(backend_url)] == shipped(dialect)
    assert await schema_of(backend_url) == EXPECTED_COLUMNS


def test_both_dialects_ship_the_same_migrations() -> None:
    sqlite_migrations = shipped("sqlite")
    assert sqlite_migrations == shipped("postgres")
    assert [v for v, _ in sqlite_migrations] == list(range(1, len(sqlite_migrations) + 1))
    assert sqlite_migrations[0] == (1, "init")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_query_parses_and_is_used_by_its_backend(dialect: str) -> None:
    package = f"stepwise.backends.{dialect}"
    queries = load_queries(package)
    assert queries
    # The dialect's backend, or the code both dialects share (write ops name their query).
    shared = resources.files("stepwise.backends")
    files = [resources.files(package).joinpath("backend.py"), shared.joinpath("encoding.py")]
    source = "".join(f.read_text(encoding="utf-8") for f in files)
    for name, sql in queries.items():
        assert sql, f"{package}/queries.sql: {name} is empty"
        assert f'"{name}"' in source, f"{package}/queries.sql: {name} is never used"


async def test_every_sqlite_query_compiles_against_the_schema(tmp_path: Path) -> None:
    """SQLite checks names only when it prepares a statement: prepare each one (EXPLAIN)."""
    path = tmp_path / "schema.db"
    backend = SqliteBackend(f"sqlite:///{path}")
    await backend.open()
    await backend.close()
    with sqlite3.connect(path) as conn:
        for name, sql in load_queries("stepwise.backends.sqlite").items():
            for statement in filter(str.strip, sql.split(";")):
                try:
                    conn.execute(f"EXPLAIN {statement}", _NamedNone())
                except sqlite3.Error as exc:
                    pytest.fail(f"query {name!r} does not compile: {exc}")


@pytest.mark.postgres
async def test_every_postgres_query_compiles_against_the_schema(postgres_url: str) -> None:
    """Postgres parses and plans each named query against the migrated schema (PREPARE)."""
    backend = open_backend(postgres_url)
    await backend.open()
    await backend.close()
    conn = await asyncpg.connect(postgres_url, server_settings={"search_path": PG_SCHEMA})
    try:
        for name, sql in load_queries("stepwise.backends.postgres").items():
            try:
                await conn.prepare(sql.replace("{schema}", PG_SCHEMA))
            except asyncpg.PostgresError as exc:
                pytest.fail(f"query {name!r} does not compile: {exc}")
    finally:
        await conn.close()


class _NamedNone(dict[str, None]):
    """Binds every named parameter to NULL."""

    def __missing__(self, key: str) -> None:
        return None
