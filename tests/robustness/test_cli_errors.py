"""The CLI as a user meets it, run as a process: exit codes, and errors that say what is wrong.

Exit codes: 0 only on success; 1 when the run failed (or a wait ran out); 2 for a usage or
configuration error (bad JSON, unknown workflow, unreachable database).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.postgres import PostgresServer
from harness.workers import Procs, child_env

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
    assert "Invalid value for '--input': not valid JSON" in result.stderr
    assert "line 2 column 4" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["run", FLOWS, "robust-echo"],
        ["worker", "--app", FLOWS, "--wait-for-database", "0"],
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


def assert_refused(result: subprocess.CompletedProcess[str], *named: str) -> None:
    """Exit code 2 and one line on stderr that names the culprit: no usage, no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for text in named:
        assert text in lines[0], result.stderr


DEEP_JSON = "[" * 5000 + "]" * 5000
WORKER = ["worker", "--app", FLOWS]
BAD_FLAGS = [
    (["--log-level", "loud", "runs", "list"], "'--log-level'", "'loud' is not one of 'debug',"),
    (["runs", "list", "--log-level", "loud"], "'--log-level'", "'loud' is not one of 'debug',"),
    ([*WORKER, "--concurrency", "ten"], "'--concurrency'",
     "'ten' is not a valid integer"),
    ([*WORKER, "--concurrency", "1e10"], "'--concurrency'", "'1e10' is not a"),
    ([*WORKER, "--concurrency", "0"], "'--concurrency'", "must be from 1 to 10000"),
    ([*WORKER, "--concurrency", "10001"], "'--concurrency'", "must be from 1"),
    ([*WORKER, "--lease", "nan"], "'--lease'", "must be a number of seconds, got nan"),
    ([*WORKER, "--lease", "inf"], "'--lease'", "must be at most 3153600000 seconds"),
    ([*WORKER, "--lease", "-1"], "'--lease'", "must be positive, got -1"),
    ([*WORKER, "--poll-interval", "nan"], "'--poll-interval'", "must be a number"),
    ([*WORKER, "--shutdown-grace", "1e400"], "'--shutdown-grace'", "must be at most"),
    ([*WORKER, "--health-port", "99999"], "'--health-port'", "99999 is not in the range"),
    (["operator", "--health-port", "-1"], "'--health-port'", "-1 is not in the range 0<=x<=65535"),
    (["start", "robust-echo", "--timeout", "nan"], "'--timeout'", "must be a number of seconds"),
    (["start", "robust-echo", "--deadline", "inf"], "'--deadline'", "must be at most"),
    (["start", "robust-echo", "--deadline", "1e300"], "'--deadline'", "must be at most"),
    (["start", "robust-echo", "--deadline", "soon"], "'--deadline'", "'soon' is not a valid float"),
    (["start", "a b"], "'WORKFLOW'", "'a b' is invalid: use letters, digits"),
    (["start", "w" * 6000], "'WORKFLOW'", "'wwww"),
    (["start", "robust-echo", "--idempotency-key", "k" * 6000], "'--idempotency-key'",
     "must be at most 255 characters"),
    (["start", "robust-echo", "--input", DEEP_JSON], "'--input'", "is nested more than 100"),
    (["start", "robust-echo", "--input", '{"a": "\\u0000"}'], "'--input'", "the value must not"),
    (["runs", "list", "--limit", "9" * 30], "'--limit'", "must be from 1 to 10000"),
    (["runs", "list", "--database-url", "postgresql://[::1"], "'--database-url'",
     "'postgresql://[::1': Invalid IPv6"),
    (["runs", "list", "--database-url", "postgresql://u:secret@h:99999/x"], "'--database-url'",
     "u:***@h:99999"),
    (["runs", "list", "--database-url", "postgresql://h:0/x"], "'--database-url'",
     "port must be from 1 to 65535"),
    (["--database-url", "postgresql://h:0/x", "runs", "list"], "'--database-url'",
     "port must be from 1 to 65535"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "flag", "problem"),
    BAD_FLAGS,
    ids=[f"{i}-{a[0]}" for i, (a, *_) in enumerate(BAD_FLAGS)],
)
def test_bad_flag_value_is_one_line_naming_it_and_stores_nothing(
    procs: Procs, argv: list[str], flag: str, problem: str
) -> None:
    result = procs.cli(*argv)  # the default database: sqlite:///stepwise.db in procs.root
    assert_refused(result, f"Invalid value for {flag}", problem)
    assert "secret" not in result.stderr
    assert not (procs.root / "stepwise.db").exists()


BAD_VARIABLES = [
    ("CONCURRENCY", "--concurrency", "abc", "'abc' is not a valid integer"),
    ("CONCURRENCY", "--concurrency", "0", "must be from 1 to 10000, got 0"),
    ("CONCURRENCY", "--concurrency", "-3", "must be from 1 to 10000, got -3"),
    ("LEASE_SECONDS", "--lease", "nan", "must be a number of seconds, got nan"),
    ("LEASE_SECONDS", "--lease", "0", "must be positive, got 0"),
    ("HEALTH_PORT", "--health-port", "99999", "99999 is not in the range 0<=x<=65535"),
    ("HEALTH_PORT", "--health-port", "http", "'http' is not a valid integer"),
]


@pytest.mark.parametrize(("name", "flag", "value", "problem"), BAD_VARIABLES)
def test_bad_variable_is_named_by_the_commands_that_use_it_only(
    procs: Procs, tmp_path: Path, name: str, flag: str, value: str, problem: str
) -> None:
    env = {f"STEPWISE_{name}": value}
    worker = procs.cli("worker", "--app", FLOWS, env=env)
    assert_refused(worker, f"Invalid value for '{flag}' (env var: 'STEPWISE_{name}'): {problem}")
    assert not (procs.root / "stepwise.db").exists()
    database = ["--database-url", f"sqlite:///{tmp_path / 'stepwise.db'}"]
    started = procs.cli("start", "robust-echo", *database, env=env)
    assert started.returncode == 0, started.stderr
    listed = procs.cli("runs", "list", *database, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "robust-echo" in listed.stdout


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("LOG_LEVEL", "loud", "'loud' is not one of 'debug', 'info', 'warning', 'error'"),
        (
            "DATABASE_URL",
            "postgresql://u:secret@[::1",
            "invalid database URL 'postgresql://u:***@[::1'",
        ),
    ],
)
def test_bad_variable_every_command_uses_is_named(
    procs: Procs, name: str, value: str, problem: str
) -> None:
    for argv in (["runs", "list"], ["start", "robust-echo"]):
        result = procs.cli(*argv, env={f"STEPWISE_{name}": value})
        assert_refused(result, f"(env var: 'STEPWISE_{name}'): {problem}")
        assert "secret" not in result.stderr


def test_a_missing_argument_is_named(procs: Procs) -> None:
    assert_refused(procs.cli("start"), "stepwise start: error: Missing argument 'WORKFLOW'")


@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["runs", "show", str(uuid.uuid4())], ["runs", "cancel", str(uuid.uuid4())]],
    ids=lambda command: "-".join(command[:2]),
)
def test_read_only_commands_never_create_a_database(
    procs: Procs, tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "sub" / "stepwsie.db"
    result = procs.cli(*command, "--database-url", f"sqlite:///{typo}")
    assert_refused(result, f"no SQLite database at '{typo}'")
    assert not typo.parent.exists()


@pytest.mark.parametrize(
    "command",
    [["runs", "list"], ["runs", "show", str(uuid.uuid4())], ["runs", "cancel", str(uuid.uuid4())]],
    ids=lambda command: "-".join(command[:2]),
)
def test_read_only_commands_never_create_the_postgres_schema(
    procs: Procs, pg_server: PostgresServer, postgres_url: str, command: list[str]
) -> None:
    """A database without stepwise's schema (a mistyped database or --schema) stays as it is."""
    with_password = postgres_url.replace("postgres@", "postgres:secret@")
    result = procs.cli(*command, "--database-url", with_password, "--schema", "stepwsie")
    hidden = postgres_url.replace("postgres@", "postgres:***@")
    assert_refused(result, f"the database at {hidden} has no stepwise schema 'stepwsie'")
    assert "secret" not in result.stderr
    database = postgres_url.rsplit("/", 1)[1]
    schemas = pg_server.psql(
        "SELECT nspname FROM pg_namespace WHERE nspname = 'stepwsie'", database
    )
    assert schemas.strip() == ""


def test_health_port_in_use_is_one_line(procs: Procs, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = procs.cli(
            "worker", "--app", FLOWS, "--health-host", "127.0.0.1", "--health-port", str(port),
            "--database-url", f"sqlite:///{tmp_path / 'stepwise.db'}",
        )  # fmt: skip
    assert_refused(result, f"cannot serve health checks on 127.0.0.1:{port}")


@pytest.mark.parametrize("command", [["runs", "list"], ["runs", "show"]])
def test_output_to_a_closed_pipe_ends_quietly(
    procs: Procs, tmp_path: Path, command: list[str]
) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'stepwise.db'}"]
    started = procs.cli("start", "robust-echo", "--input", json.dumps("x" * 1000), *database)
    assert started.returncode == 0, started.stderr
    if command[-1] == "show":
        command = [*command, started.stdout.strip()]
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before stepwise writes a byte: as `| head` ending
    try:
        result = subprocess.run(
            [sys.executable, "-m", "stepwise", *command, *database],
            stdin=subprocess.DEVNULL,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert result.stderr == ""
    assert result.returncode == 128 + signal.SIGPIPE
