"""The command follows the conventions users expect of one: help, defaults and variables
shown, global options anywhere, ``--version``, shell completion, errors naming the value."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from tests.cli.conftest import Stepwise

VARIABLES = [
    ("worker", "STEPWISE_APP"),
    ("worker", "STEPWISE_CONCURRENCY"),
    ("worker", "STEPWISE_LEASE_SECONDS"),
    ("worker", "STEPWISE_MAX_RECOVERY_ATTEMPTS"),
    ("worker", "STEPWISE_ON_DIVERGENCE"),
    ("worker", "STEPWISE_MAX_PAYLOAD_BYTES"),
    ("worker", "STEPWISE_WAIT_FOR_DATABASE"),
    ("worker", "STEPWISE_HEALTH_PORT"),
    ("worker", "STEPWISE_HEALTH_HOST"),
    ("worker", "STEPWISE_DATABASE_URL"),
    ("worker", "STEPWISE_SCHEMA"),
    ("worker", "STEPWISE_LOG_LEVEL"),
    ("operator", "STEPWISE_HEALTH_PORT"),
    ("start", "STEPWISE_MAX_PAYLOAD_BYTES"),
]


def test_version_comes_from_the_package_metadata(stepwise: Stepwise) -> None:
    shown = stepwise("--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"stepwise {metadata.version('stepwise-workflows')}"


def test_runs_help_lists_its_actions(stepwise: Stepwise) -> None:
    shown = stepwise("runs", "--help")
    assert shown.returncode == 0, shown.stderr
    actions = shown.stdout.split("Commands:")[1].split()
    for action in ("list", "show", "cancel"):
        assert action in actions


@pytest.mark.parametrize(("command", "variable"), VARIABLES)
def test_help_shows_each_variable_and_default(
    stepwise: Stepwise, command: str, variable: str
) -> None:
    shown = stepwise(command, "--help")
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.split())
    assert f"env var: {variable}" in flat
    assert "default: " in flat


def test_a_variable_sets_its_option(stepwise: Stepwise, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'from-env.db'}"
    started = stepwise("start", "some-flow", env={"STEPWISE_DATABASE_URL": database})
    assert started.returncode == 0, started.stderr
    assert (tmp_path / "from-env.db").is_file()


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_are_accepted_before_and_after_the_command(
    stepwise: Stepwise, tmp_path: Path, where: str
) -> None:
    database = f"sqlite:///{tmp_path / where}.db"
    globals_ = ["--log-level", "debug", "--database-url", database, "--schema", "stepwise"]
    argv = (
        [*globals_, "start", "some-flow"]
        if where == "before"
        else ["start", "some-flow", *globals_]
    )
    started = stepwise(*argv)
    assert started.returncode == 0, started.stderr
    assert " DEBUG " in started.stderr
    assert (tmp_path / f"{where}.db").is_file()


def test_a_flag_after_the_command_wins_over_one_before(stepwise: Stepwise, tmp_path: Path) -> None:
    before, after = tmp_path / "before.db", tmp_path / "after.db"
    started = stepwise(
        "--database-url", f"sqlite:///{before}", "start", "some-flow",
        "--database-url", f"sqlite:///{after}",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert after.is_file()
    assert not before.exists()


def test_a_bad_number_names_the_option_and_the_value(stepwise: Stepwise) -> None:
    refused = stepwise("worker", "--app", "flows.py", "--concurrency", "ten")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "stepwise worker: error: Invalid value for '--concurrency' (env var: "
        "'STEPWISE_CONCURRENCY'): 'ten' is not a valid integer. (see 'stepwise worker --help')"
    ]


def test_shell_completion_completes_commands(stepwise: Stepwise) -> None:
    script = stepwise(env={"_STEPWISE_COMPLETE": "bash_source"})
    assert script.returncode == 0, script.stderr
    assert "_STEPWISE_COMPLETE=bash_complete" in script.stdout
    completed = stepwise(
        env={"_STEPWISE_COMPLETE": "bash_complete", "COMP_WORDS": "stepwise ru", "COMP_CWORD": "1"}
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["plain,run", "plain,runs"]
