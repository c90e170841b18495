"""docs/child-workflows.md runs as written: its snippets, written to the files they name, fan
an order out to child workflows (one fails, one is started first and awaited last) and print
what the page says they print."""

from __future__ import annotations

from pathlib import Path

from tests.docsnippets import assert_guide_runs

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "child-workflows.md"


def test_the_child_workflows_guide_runs_as_written(tmp_path: Path) -> None:
    assert_guide_runs(GUIDE, {"shop.py", "main.py"}, tmp_path)
