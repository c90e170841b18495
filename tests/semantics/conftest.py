"""An in-process engine per test: a client and a worker on a fresh database of each backend.

Each test registers its workflows in its own ``Registry`` so names never collide across tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from stepwise import Client, Registry, Run, Worker, WorkflowDefinition
from stepwise.worker.inline import run_to_completion


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
