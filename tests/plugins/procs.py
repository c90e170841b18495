"""Fixture ``procs``: a ``harness.workers.Procs`` for one test, which kills whatever is still
running at teardown, stopped (SIGSTOP) processes included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.workers import Procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Spawns processes with logs in ``tmp_path/procs``; kills leftovers after the test."""
    root = tmp_path / "procs"
    root.mkdir()
    manager = Procs(root)
    try:
        yield manager
    finally:
        manager.close()
