"""Databases this stepwise must not use: a schema migrated by a newer stepwise, and a damaged
SQLite file. Each is refused with one line that names it, by the backend, the CLI and a worker
process, and nothing is written."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from harness.workers import Procs
from stepwise import Client
from stepwise.backends import migrations, open_backend
from stepwise.errors import SchemaTooNew

FLOWS = str(Path(__file__).with_name("flows.py"))
FUTURE = 9999


def known_version(url: str) -> int:
    dialect = "sqlite" if url.startswith("sqlite") else "postgres"
    return migrations.discover(f"stepwise.backends.{dialect}.migrations")[-1].version


async def migrated_by_a_newer_stepwise(url: str) -> None:
    """Open (and so migrate) the database, then record a migration this stepwise does not ship,
    as a newer stepwise would."""
    backend = open_backend(url)
    await backend.open()
    await backend.close()
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "INSERT INTO stepwise_migrations (version, name, applied_at) "
                "VALUES (?, 'from_the_future', '2100-01-01T00:00:00.000000Z')",
                (FUTURE,),
            )
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO stepwise.stepwise_migrations (version, name) "
            "VALUES ($1, 'from_the_future')",
            FUTURE,
        )
    finally:
        await conn.close()


def refusal(url: str) -> str:
    return f"is version {FUTURE}, this stepwise knows up to {known_version(url)}; upgrade stepwise"


async def test_a_backend_refuses_a_schema_newer_than_it_knows(backend_url: str) -> None:
    await migrated_by_a_newer_stepwise(backend_url)
    backend = open_backend(backend_url)
    with pytest.raises(SchemaTooNew) as caught:
        await backend.open()
    assert refusal(backend_url) in str(caught.value)
    assert (caught.value.found, caught.value.known) == (FUTURE, known_version(backend_url))


@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["start", "robust-echo"], ["worker", "--app", FLOWS]],
    ids=["runs-list", "start", "worker"],
)
async def test_the_cli_and_a_worker_refuse_a_newer_schema_in_one_line(
    backend_url: str, procs: Procs, command: list[str]
) -> None:
    await migrated_by_a_newer_stepwise(backend_url)
    result = procs.cli(*command, "--database-url", backend_url)
    assert result.returncode == 2
    assert refusal(backend_url) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def damage(path: Path, how: str) -> None:
    """Damage a populated SQLite file at ``path`` the way a disk, a copy or a user might."""
    size = path.stat().st_size
    if how == "truncated":
        os.truncate(path, size // 3)
    elif how == "garbage":
        path.write_bytes(b"this is not a database\n" * 2000)
    elif how == "overwritten-pages":  # the header survives: open works, reading fails
        with path.open("r+b") as file:
            file.seek(8192)
            file.write(b"\xff" * 20000)
    elif how == "directory":
        path.unlink()
        path.mkdir()


@pytest.mark.parametrize("how", ["truncated", "garbage", "overwritten-pages", "directory"])
@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["start", "robust-echo"], ["worker", "--app", FLOWS]],
    ids=["runs-list", "start", "worker"],
)
async def test_a_damaged_sqlite_file_is_one_error_naming_the_file(
    tmp_path: Path, procs: Procs, how: str, command: list[str]
) -> None:
    path = tmp_path / "stepwise.db"
    async with Client.connect(f"sqlite:///{path}") as client:
        for n in range(200):
            await client.start("robust-echo", {"n": n, "padding": "x" * 500})
    for leftover in tmp_path.glob("stepwise.db-*"):  # the WAL was checkpointed on close
        leftover.unlink()
    damage(path, how)
    result = procs.cli(*command, "--database-url", f"sqlite:///{path}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # The error is one line; a worker logs at INFO, so its start line may come before it when
    # the damage lies in pages that opening the file does not read.
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("stepwise")]
    assert str(path) in line
    if how != "directory":  # read-only commands say "no SQLite database at" a directory
        assert f"cannot use the SQLite file {path}" in line
