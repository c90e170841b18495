"""A WorkflowRun's ``kubectl describe`` ends with the run's last log lines (``status.logTail``),
kept up to date while the run executes: with the real API server, Postgres, a ``stepwise
worker`` process and the ``stepwise operator`` process."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.workers import Procs
from stepwise.backends.base import LogEntry
from stepwise.operator import status
from tests.operator.conftest import OperatorHarness

FLOWS = Path(__file__).with_name("log_workflows.py")


@pytest.mark.kube
@pytest.mark.postgres
def test_describe_shows_the_last_log_lines(
    operator: OperatorHarness, procs: Procs, postgres_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    procs.worker(FLOWS, postgres_url, lease=15.0, ready=True)
    operator.start()
    operator.apply("logs-1", {"workflow": "log-tail", "input": {"who": "ada", "gate": str(gate)}})

    waiting = operator.wait_status(
        "logs-1", lambda s: len(s.get("logTail", [])) == 2, "the first two lines in logTail"
    )
    first, second = waiting["logTail"]
    assert first.endswith("INFO    [workflow] starting for ada")
    assert second.endswith("WARNING [wait] waiting for the gate")  # its first line only
    described = operator.kubectl("describe", "wfr", "logs-1")
    assert "Log Tail:" in described
    assert "[wait] waiting for the gate" in described

    gate.touch()
    done = operator.wait_phase("logs-1", "Succeeded")
    done = operator.wait_status(
        "logs-1", lambda s: s.get("logTail", [""])[-1].endswith("line 11"), "the last line"
    )
    assert [line.split("] ", 1)[1] for line in done["logTail"]] == [
        f"line {n}" for n in range(2, 12)
    ]
    # The operator's own log: a line per phase the run reached, naming the run and workflow.
    where = f"[{operator.namespace}/logs-1] run {done['runId']} (workflow log-tail)"
    assert f"INFO stepwise.operator: {where} Running" in operator.log()
    assert f"INFO stepwise.operator: {where} Succeeded" in operator.log()


def test_the_tail_is_the_last_lines_each_cut_to_one_line() -> None:
    start = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)
    entries = [
        LogEntry(
            "r", n, start + timedelta(seconds=n), logging.INFO, "x", None, 1, f"{n}\nmore", None
        )
        for n in range(1, 15)
    ]
    long = LogEntry("r", 15, start, logging.ERROR, "x", "charge", 2, "y" * 500, None)
    marker = LogEntry("r", 16, start, logging.WARNING, "stepwise", None, None, "", 7)
    tail = status.log_tail([*entries, long, marker])
    assert len(tail) == status.LOG_TAIL_LINES
    assert tail[0] == "2026-01-31 08:00:07 INFO    [workflow] 7"
    assert tail[-2].startswith("2026-01-31 08:00:00 ERROR   [charge #2] yyy")
    assert len(tail[-2]) == status.MAX_LOG_LINE_CHARS
    assert tail[-1].endswith(
        "[workflow] 7 more log line(s) dropped: the run reached its cap of log lines"
    )
