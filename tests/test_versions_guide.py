"""docs/versions.md runs as written: its snippets, written to the files they name, serve two
versions of a workflow, start a delayed run, page the runs, and print what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.workers import child_env
from tests.docsnippets import snippets, write

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "versions.md"


def test_the_versions_guide_runs_as_written(tmp_path: Path) -> None:
    text = GUIDE.read_text()
    files = snippets(text)
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
    printed = re.search(r"`python main.py` prints:\n\n```\n(.*?)```", text, re.S)
    assert printed is not None
    assert done.stdout == printed[1]
