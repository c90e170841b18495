"""``stepwise schedules add | list | pause | resume | delete``, as a user types them: each says
what it did in one line (``list`` as a table or ``--json``); a bad expression, time zone or
name is one line naming it, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Stepwise


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_add_list_pause_resume_delete(stepwise: Stepwise, url: str) -> None:
    db = ("--database-url", url)
    added = stepwise(
        "schedules", "add", "nightly", "0 3 * * *", "report", "--input", '{"to": "ops"}',
        "--timezone", "Europe/Paris", *db,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("schedule nightly: next tick ")

    table = stepwise("schedules", "list", *db)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "WORKFLOW", "PAUSED", "LAST", "NEXT"]
    assert row.split()[:9] == ["nightly", "0", "3", "*", "*", "*", "Europe/Paris", "report", "no"]

    for verb, paused in (("pause", True), ("resume", False)):
        changed = stepwise("schedules", verb, "nightly", *db)
        assert changed.returncode == 0, changed.stderr
        assert changed.stdout.strip() == f"schedule nightly {verb}d"
        [listed] = json.loads(stepwise("schedules", "list", "--json", *db).stdout)
        assert (listed["paused"], listed["input"]) == (paused, {"to": "ops"})

    deleted = stepwise("schedules", "delete", "nightly", *db)
    assert deleted.stdout.strip() == "schedule nightly deleted"
    assert json.loads(stepwise("schedules", "list", "--json", *db).stdout) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("add", "s", "61 * * * *", "wf"), "cron expression '61 * * * *' is not a valid"),
        (("add", "s", "* * * * *", "wf", "--timezone", "Nowhere/City"), "'Nowhere/City'"),
        (("add", "bad name", "* * * * *", "wf"), "schedule name 'bad name' is invalid"),
        (("pause", "missing"), "no schedule named 'missing'"),
        (("delete", "missing"), "no schedule named 'missing'"),
    ],
)
def test_mistakes_are_one_line(
    stepwise: Stepwise, url: str, args: tuple[str, ...], named: str
) -> None:
    stepwise("schedules", "add", "other", "* * * * *", "wf", "--database-url", url)
    done = stepwise("schedules", *args, "--database-url", url)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert named in line
