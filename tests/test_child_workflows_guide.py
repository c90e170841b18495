"""docs/child-workflows.md runs as written: its snippets, written to the files they name, fan
an order out to child workflows (one fails, one is started first and awaited last) and print
what the page says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.workers import child_env
from tests.docsnippets import snippets, write

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "child-workflows.md"


def test_the_child_workflows_guide_runs_as_written(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    files = snippets(text)
    assert set(files) == {"shop.py", "main.py"}
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
