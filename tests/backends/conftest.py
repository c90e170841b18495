"""Fixtures that hand every backend test one open backend per dialect.

``backend_url`` (``tests/conftest.py``) is parametrized ``[sqlite, postgres]``;
``backend_factory`` opens more instances on the same database, the way separate worker
processes would share it: two claimers, a stale lease holder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from stepwise.backends import open_backend
from stepwise.backends.base import Backend

BackendFactory = Callable[[], Awaitable[Backend]]


@pytest.fixture
async def backend_factory(backend_url: str) -> AsyncIterator[BackendFactory]:
    """Opens (and, after the test, closes) backend instances on the test's database."""
    opened: list[Backend] = []

    async def open_one() -> Backend:
        backend = open_backend(backend_url)
        await backend.open()
        opened.append(backend)
        return backend

    yield open_one
    for backend in reversed(opened):
        await backend.close()


@pytest.fixture
async def backend(backend_factory: BackendFactory) -> Backend:
    """An open backend on the test's database."""
    return await backend_factory()
