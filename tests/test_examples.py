"""Every example is executed, the way a user would run it: ``stepwise run FILE WORKFLOW``, or,
for one that needs a deadline, ``stepwise start --deadline`` and a worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.workers import Procs
from stepwise import Client

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
    (
        "durable_sleep.py",
        "onboarding",
        '{"user": "ada", "waitSeconds": 0.2}',
        [
            {"to": "ada@example.com", "subject": "Welcome!", "status": "sent"},
            {
                "to": "ada@example.com",
                "subject": "Three tips for your first week",
                "status": "sent",
            },
        ],
    ),
    (
        "retries.py",
        "charge-with-retries",
        '{"order": "A-1", "failures": 2}',
        {
            "charge": {"order": "A-1", "charged": True, "attempts": 3},
            "declined": "not retried: card declined for A-1",
        },
    ),
    (
        "pydantic_models.py",
        "quote-order",
        '{"customer": "ada", "lines": [{"sku": "pen", "quantity": 3}, {"sku": "notebook", '
        '"quantity": 2}]}',
        {"customer": "ada", "total": "13.00", "reference": "ada-13.00"},
    ),
]


def _run(
    folder: Path, file: str, name: str, payload: str | None
) -> subprocess.CompletedProcess[str]:
    """``stepwise run`` of an example, in ``folder``: the default database is ./stepwise.db,
    so the test runs where a user would, in a scratch folder."""
    cmd = [sys.executable, "-m", "stepwise", "run", str(EXAMPLES / file), name]
    if payload is not None:
        cmd += ["--input", payload]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("file", "name", "payload", "expected"), CASES, ids=[c[1] for c in CASES])
def test_example_runs_on_embedded_sqlite(
    file: str, name: str, payload: str | None, expected: Any, tmp_path: Path
) -> None:
    done = _run(tmp_path, file, name, payload)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
    assert (tmp_path / "stepwise.db").exists()
    assert "✓" in done.stderr  # each step is shown as it ends


def test_a_sleeping_run_replays_its_completed_step(tmp_path: Path) -> None:
    """The welcome email is not sent again when the run resumes after its sleep."""
    done = _run(tmp_path, "durable_sleep.py", "onboarding", '{"user": "ada", "waitSeconds": 0.2}')
    assert done.returncode == 0, done.stderr
    assert "welcome (stored result)" in done.stderr
    assert done.stderr.count("▶ welcome") == 1


def test_an_invalid_pydantic_input_is_refused_naming_the_field(tmp_path: Path) -> None:
    bad = '{"customer": "ada", "lines": [{"sku": "pen", "quantity": 0}]}'
    refused = _run(tmp_path, "pydantic_models.py", "quote-order", bad)
    assert refused.returncode == 2
    assert "lines.0.quantity" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stdout == ""


async def test_a_deadline_stops_waiting_for_a_retry(tmp_path: Path, procs: Procs) -> None:
    """As the example's docstring runs it: started with a deadline, executed by a worker."""
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    started = procs.cli(
        "start", "authorize-payment", "--input", '{"order": "A-1", "amount": 42}',
        "--deadline", "20", "--database-url", database,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    procs.worker(EXAMPLES / "deadlines.py", database)
    async with Client.connect(database) as client:
        output = await client.wait(started.stdout.strip(), timeout=60)
        steps = {step.key: step for step in await client.steps(started.stdout.strip())}
    assert output == {"order": "A-1", "amount": 42, "provider": "backup", "authorized": True}
    assert steps["primary"].attempts == 1  # its next retry would have come after the deadline
