"""docs/signals.md runs as written: its snippets, written to the files they name, send a
signal before the run waits and one while it is parked (and one again under the same
idempotency key), and print what the page says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.workers import child_env
from tests.docsnippets import snippets, write

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "signals.md"


def test_the_signals_guide_runs_as_written(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    files = snippets(text)
    assert set(files) == {"approvals.py", "main.py"}
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
    printed = re.search(r"`python main.py` prints:\n\n```text\n(.*?)```", text, re.S)
    assert printed is not None
    assert done.stdout == printed[1]
