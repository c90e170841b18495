"""The installed ``stepwise`` script, as a user runs it: unlike ``python -m stepwise``, it
does not put the current folder on ``sys.path``, which is what ``--app pkg.module`` trips on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.workers import child_env

SCRIPT = Path(sys.executable).parent / "stepwise"

Stepwise = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stepwise(tmp_path: Path) -> Stepwise:
    """``stepwise ARGS…`` to completion in ``cwd`` (default: ``tmp_path``), output captured."""

    def run(
        *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=child_env(env),
            cwd=cwd or tmp_path,
            timeout=60,
            check=False,
        )

    return run
