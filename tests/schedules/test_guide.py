"""docs/schedules.md runs as written: its snippets, written to the files they name, add a
schedule, serve it until two ticks ran, and print what the page says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.workers import child_env
from tests.docsnippets import snippets, write

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"


def test_the_schedules_guide_runs_as_written(tmp_path: Path) -> None:
    files = snippets(GUIDE.read_text())
    assert set(files) == {"flows.py", "main.py"}
    write(files, tmp_path)
    done = subprocess.run(
        [sys.executable, "main.py"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    first, second, paused, listed = done.stdout.splitlines()
    key = re.compile(r"^schedule:every-second:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ops$")
    assert key.match(first), first
    assert key.match(second), second
    assert (paused, listed) == ("paused: True", "['every-second']")
