"""docs/testing.md is a project a user could copy: its snippets, written to the files they
name, pass under pytest as they stand.

A python block under a line naming a file (`` `flows.py`: ``) starts that file; a python
block without one continues the last file named.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.workers import child_env

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
BLOCK = re.compile(r"(?:^`(?P<file>[\w.]+\.py)`:\n\n)?^```python\n(?P<code>.*?)^```", re.M | re.S)


def snippets(markdown: str) -> dict[str, str]:
    """File name -> its code, gathered from the guide's python blocks."""
    files: dict[str, str] = {}
    current: str | None = None
    for block in BLOCK.finditer(markdown):
        current = block["file"] or current
        assert current is not None, "the first python block names no file"
        files[current] = files.get(current, "") + block["code"] + "\n\n"
    return files


def test_the_testing_guide_runs_as_written(tmp_path: Path) -> None:
    files = snippets(GUIDE.read_text())
    assert set(files) == {"flows.py", "test_flows.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    tests = files["test_flows.py"].count("\nasync def test_")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_flows.py"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{tests} passed" in done.stdout, done.stdout
