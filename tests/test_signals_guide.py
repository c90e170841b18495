"""docs/signals.md runs as written: its snippets, written to the files they name, send a
signal before the run waits and one while it is parked (and one again under the same
idempotency key), and print what the page says they print."""

from __future__ import annotations

from pathlib import Path

from tests.docsnippets import assert_guide_runs

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "signals.md"


def test_the_signals_guide_runs_as_written(tmp_path: Path) -> None:
    assert_guide_runs(GUIDE, {"approvals.py", "main.py"}, tmp_path)
