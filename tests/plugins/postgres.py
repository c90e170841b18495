"""Fixtures of a real PostgreSQL (``harness.postgres``): one server per session, one fresh
database per test cloned from a template.

Fixtures: ``pg_server`` (session) and ``postgres_url`` (a fresh database per test). Every test
that uses either is marked ``postgres`` so ``-m "not postgres"`` deselects it; a test marked
``postgres`` gets the server started for it. A server that cannot start fails the test with
the reason and the way out; it never skips.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import INSTALL_HINT, TEMPLATE_DB, PostgresMissing, PostgresServer, find_bindir


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, stopped at session end)."""
    try:
        bindir = find_bindir()
    except PostgresMissing as exc:
        pytest.fail(str(exc))
    root = Path(tempfile.mkdtemp(prefix="stepwise-pg-"))
    server = PostgresServer(bindir, root)
    try:
        server.init()
        server.start()
        server.psql(f"CREATE DATABASE {TEMPLATE_DB}")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL server: {exc}\n({INSTALL_HINT})")
    try:
        yield server
    finally:
        # Immediate: the cluster is deleted next, so a shutdown checkpoint would only cost time.
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(pg_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database (no migrations applied) for this test only."""
    pg_server.start()  # a previous test may have left it stopped
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.start()
    pg_server.drop_database_soon(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        uses_server = "pg_server" in item.fixturenames or "postgres_url" in item.fixturenames
        if uses_server and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
        elif not uses_server and item.get_closest_marker("postgres") is not None:
            # A test marked ``postgres`` that asks for no fixture still gets the server.
            item.fixturenames.append("pg_server")
