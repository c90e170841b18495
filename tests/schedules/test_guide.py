"""docs/schedules.md runs as written: its snippets, written to the files they name, add a
schedule, serve it until two ticks ran, and print what the page says they print."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docsnippets import run_guide

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"


def test_the_schedules_guide_runs_as_written(tmp_path: Path) -> None:
    _, stdout = run_guide(GUIDE, {"flows.py", "main.py"}, tmp_path)
    first, second, paused, listed = stdout.splitlines()
    key = re.compile(r"^schedule:every-second:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ops$")
    assert key.match(first), first
    assert key.match(second), second
    assert (paused, listed) == ("paused: True", "['every-second']")
