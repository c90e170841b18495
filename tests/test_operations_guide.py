"""docs/operations.md runs as written: its snippets, written to the files they name, print
exactly the output the page shows (retry, fork and prune, with a worker, on SQLite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.workers import child_env
from tests.docsnippets import snippets, write

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def printed(markdown: str) -> str:
    """The fences without a language, in order: what the script prints."""
    shown, fence = [], None
    for line in markdown.splitlines(keepends=True):
        if fence is None and line.startswith("```"):
            fence = line.strip().removeprefix("```")
        elif fence is not None and line.strip() == "```":
            fence = None
        elif fence == "":
            shown.append(line)
    return "".join(shown)


def test_the_operations_guide_runs_as_written(tmp_path: Path) -> None:
    markdown = GUIDE.read_text()
    files = snippets(markdown)
    assert set(files) == {"orders.py", "operate.py"}
    write(files, tmp_path)
    done = subprocess.run(
        [sys.executable, "operate.py"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == printed(markdown)
