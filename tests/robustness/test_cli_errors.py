"""The CLI as a user meets it, run as a process: exit codes, and errors that say what is wrong.

Exit codes: 0 only on success; 1 when the run failed (or a wait ran out); 2 for a usage or
configuration error (bad JSON, unknown workflow, unreachable database).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugins.procs import Procs

FLOWS = str(Path(__file__).with_name("flows.py"))
UNREACHABLE = "postgresql://u:secret@127.0.0.1:1/x"
HIDDEN = "postgresql://u:***@127.0.0.1:1/x"
BAD_JSON = '{"a":\n 1,}'
"""Broken on line 2, column 4 (a trailing comma before the brace)."""


@pytest.mark.parametrize(
    "command", [["run", FLOWS, "robust-echo"], ["start", "robust-echo"]], ids=["run", "start"]
)
def test_bad_input_json_says_where(procs: Procs, command: list[str]) -> None:
    result = procs.cli(*command, "--input", BAD_JSON)
    assert result.returncode == 2
    assert "--input: not valid JSON" in result.stderr
    assert "line 2 column 4" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["run", FLOWS, "robust-echo"],
        ["worker", "--app", FLOWS],
        ["start", "robust-echo"],
        ["runs", "list"],
        ["runs", "show", "4b0e6a8e-1c5b-4d5e-9a57-3f1e0c2f7d11"],
        ["runs", "cancel", "4b0e6a8e-1c5b-4d5e-9a57-3f1e0c2f7d11"],
    ],
    ids=lambda command: "-".join(c for c in command if c != FLOWS)[:20],
)
def test_unreachable_database_is_named_with_its_password_hidden(
    procs: Procs, command: list[str]
) -> None:
    result = procs.cli(*command, "--database-url", UNREACHABLE)
    assert result.returncode == 2
    assert f"cannot reach the database at {HIDDEN}" in result.stderr
    assert "secret" not in result.stdout + result.stderr


def test_database_url_from_the_environment_is_hidden_too(procs: Procs) -> None:
    result = procs.cli("runs", "list", env={"STEPWISE_DATABASE_URL": UNREACHABLE})
    assert result.returncode == 2
    assert HIDDEN in result.stderr
    assert "secret" not in result.stdout + result.stderr


def test_run_exit_codes(procs: Procs, backend_url: str) -> None:
    database = ["--database-url", backend_url]
    ok = procs.cli("run", FLOWS, "robust-echo", "--input", '{"n": 1}', *database)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["input"] == {"n": 1}
    assert "▶ pid" in ok.stderr
    assert "✓ pid" in ok.stderr

    failed = procs.cli("run", FLOWS, "robust-not-json", *database)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert "StepResultError: step 'make-object'" in failed.stderr

    unknown = procs.cli("run", FLOWS, "nope", *database)
    assert unknown.returncode == 2
    assert "unknown workflow 'nope'; known workflows: " in unknown.stderr
    assert "robust-echo" in unknown.stderr

    waited = procs.cli("start", "robust-echo", "--wait", "--timeout", "1", *database)
    assert waited.returncode == 1
    assert "did not finish within 1s" in waited.stderr


def test_run_defaults_to_sqlite_in_the_current_folder(procs: Procs, tmp_path: Path) -> None:
    ran = procs.cli("run", FLOWS, "robust-echo", "--input", '"here"', cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "on sqlite:///stepwise.db" in ran.stderr
    assert (tmp_path / "stepwise.db").is_file()
    listed = procs.cli("runs", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "robust-echo" in listed.stdout
    assert "succeeded" in listed.stdout
