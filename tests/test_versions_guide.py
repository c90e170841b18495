"""docs/versions.md runs as written: its snippets, written to the files they name, serve two
versions of a workflow, start a delayed run, page the runs, and print what the page says."""

from __future__ import annotations

from pathlib import Path

from tests.docsnippets import assert_guide_runs

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "versions.md"


def test_the_versions_guide_runs_as_written(tmp_path: Path) -> None:
    assert_guide_runs(GUIDE, {"flows.py", "main.py"}, tmp_path)
