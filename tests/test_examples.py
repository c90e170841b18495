"""Every example is executed, the way a user would run it: ``stepwise run FILE WORKFLOW``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CASES: list[tuple[str, str, str | None, Any]] = [
    (
        "fetch_all_data.py",
        "fetch-all-data",
        '{"userId": 42, "subId": "sub_123"}',
        {
            "user": {"id": 42, "name": "user-42"},
            "subscription": {"id": "sub_123", "plan": "pro", "status": "active"},
            "settings": {"userId": 42, "theme": "dark", "emails": True},
        },
    ),
    (
        "notifications.py",
        "send-notifications",
        '{"user": "ada"}',
        [
            {"channel": "email", "to": "ada@example.com", "status": "sent"},
            {"channel": "sms", "to": "+1-555-ada", "status": "sent"},
            {"channel": "push", "to": "device-of-ada", "status": "sent"},
        ],
    ),
    ("batch.py", "process-batch", '{"count": 25}', sum(i * i + 1 for i in range(25))),
    ("batch.py", "process-in-batches", '{"count": 25}', sum(i * i + 1 for i in range(25))),
    (
        "all_settled.py",
        "all-settled",
        None,
        {"fulfilled": [{"name": "ada"}], "rejected": ["fetch-settings: Database unavailable"]},
    ),
    ("all_settled.py", "first-error", None, "handled: ConnectionError: Database unavailable"),
    (
        "dependent_steps.py",
        "user-orders",
        '{"userId": 7}',
        {
            "user": {"id": 7, "name": "user-7"},
            "orders": [{"order": n, "userId": 7} for n in range(3)],
        },
    ),
    (
        "crash_recovery.py",
        "crash-recovery",
        '{"slowSeconds": 0}',
        ["step-a done", "step-b done", "step-c done"],
    ),
]


@pytest.mark.parametrize(("file", "name", "payload", "expected"), CASES, ids=[c[1] for c in CASES])
def test_example_runs_on_embedded_sqlite(
    file: str, name: str, payload: str | None, expected: Any, tmp_path: Path
) -> None:
    cmd = [sys.executable, "-m", "stepwise", "run", str(EXAMPLES / file), name]
    if payload is not None:
        cmd += ["--input", payload]
    # The default database is ./stepwise.db: run where the user would, in a scratch folder.
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    assert (tmp_path / "stepwise.db").exists()
    assert "✓" in done.stderr  # each step is shown as it ends
