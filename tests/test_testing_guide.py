"""docs/testing.md is a project a user could copy: its snippets, written to the files they
name, pass under pytest as they stand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.workers import child_env
from tests.docsnippets import snippets, write

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def test_the_testing_guide_runs_as_written(tmp_path: Path) -> None:
    files = snippets(GUIDE.read_text())
    assert set(files) == {"flows.py", "test_flows.py"}
    write(files, tmp_path)
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
