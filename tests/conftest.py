"""Suite-wide fixtures: a clean environment and one database URL per backend.

``backend_url`` is parametrized ``[sqlite, postgres]`` so every test that takes it runs on
both backends: SQLite on a fresh file, Postgres on a fresh database of the session server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
