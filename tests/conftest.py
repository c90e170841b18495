"""Suite-wide fixtures: a clean environment, one database URL per backend, and what opens it.

``backend_url`` is parametrized ``[sqlite, postgres]`` so every test that takes it runs on
both backends: SQLite on a fresh file, Postgres on a fresh database of the session server.
``engine`` runs workflows in this process on that database; ``backend`` opens it bare.
Each test registers its workflows in its own ``Registry`` so names never collide across tests.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stepwise import Client, Registry, Run, Worker, WorkflowDefinition
from stepwise.backends import open_backend
from stepwise.backends.base import Backend
from stepwise.worker.inline import run_to_completion


@pytest.fixture(autouse=True)
def _scrub_stepwise_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's STEPWISE_* variables must not leak into what the tests see."""
    for name in list(os.environ):
        if name.startswith("STEPWISE_"):
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (no migrations applied yet) for this test only."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'stepwise.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class Engine:
    client: Client
    registry: Registry = field(default_factory=Registry)

    async def run(self, definition: WorkflowDefinition, input: Any = None, **kw: Any) -> Run:  # noqa: A002
        """Start ``definition`` and execute it in this process until it finished."""
        self.registry.add(definition)
        run = await self.client.start(definition, input, **kw)
        return await run_to_completion(self.client, self.registry, run.id, timeout=30)

    def worker(self, **kw: Any) -> Worker:
        kw.setdefault("poll_interval", 0.05)
        return Worker(self.client, self.registry, **kw)


@pytest.fixture
async def engine(backend_url: str) -> AsyncIterator[Engine]:
    async with Client.connect(backend_url) as client:
        yield Engine(client)


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    opened = open_backend(backend_url)
    await opened.open()
    yield opened
    await opened.close()
