"""``stepwise start --delay/--at`` and ``runs list --cursor/--all``, ``runs count``: a delayed
run is listed as pending with when it starts, and pages continue where the last one ended."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.conftest import Stepwise


def database(tmp_path: Path) -> list[str]:
    return ["--database-url", f"sqlite:///{tmp_path / 'stepwise.db'}"]


def test_a_delayed_start_is_pending_and_listed_with_when_it_starts(
    stepwise: Stepwise, tmp_path: Path
) -> None:
    db = database(tmp_path)
    later = stepwise("start", "greet", "--delay", "10m", *db)
    assert later.returncode == 0, later.stderr
    assert "note: the run starts at" in later.stderr
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    pinned = stepwise("start", "greet", "--at", at.isoformat(), *db)
    assert pinned.returncode == 0, pinned.stderr

    listed = stepwise("runs", "list", "--json", *db)
    assert listed.returncode == 0, listed.stderr
    starts = {
        run["id"]: datetime.fromisoformat(run["available_at"]) for run in json.loads(listed.stdout)
    }
    assert starts[pinned.stdout.strip()] == at
    assert starts[later.stdout.strip()] > datetime.now(UTC) + timedelta(minutes=9)
    table = stepwise("runs", "list", *db)
    assert table.stdout.count("pending, starts ") == 2, table.stdout


def test_a_start_with_both_delay_and_at_or_a_bad_time_is_refused(
    stepwise: Stepwise, tmp_path: Path
) -> None:
    db = database(tmp_path)
    both = stepwise("start", "greet", "--delay", "10m", "--at", "2030-01-01T00:00Z", *db)
    assert both.returncode != 0
    assert "start_at and delay cannot both be given" in both.stderr
    bad = stepwise("start", "greet", "--at", "tomorrow", *db)
    assert bad.returncode == 2
    assert "'tomorrow' is not an ISO 8601 time" in bad.stderr


def test_runs_list_pages_with_a_cursor_and_runs_count_counts(
    stepwise: Stepwise, tmp_path: Path
) -> None:
    db = database(tmp_path)
    ids = [stepwise("start", "paged", *db).stdout.strip() for _ in range(5)]
    stepwise("start", "other", *db)

    first = stepwise("runs", "list", "--workflow", "paged", "--limit", "2", "--json", *db)
    assert [run["id"] for run in json.loads(first.stdout)] == ids[::-1][:2]
    hint = first.stderr.strip().splitlines()[-1]
    assert hint.startswith("more runs: stepwise runs list --cursor ")
    cursor = hint.rsplit(" ", 1)[-1]
    second = stepwise(
        "runs", "list", "--workflow", "paged", "--limit", "2", "--cursor", cursor, "--json", *db
    )
    assert [run["id"] for run in json.loads(second.stdout)] == ids[::-1][2:4]

    every = stepwise("runs", "list", "--workflow", "paged", "--limit", "2", "--all", "--json", *db)
    assert [run["id"] for run in json.loads(every.stdout)] == ids[::-1]
    assert "more runs" not in every.stderr

    assert stepwise("runs", "count", *db).stdout.strip() == "6"
    assert stepwise("runs", "count", "--workflow", "paged", *db).stdout.strip() == "5"
    done = stepwise("runs", "count", "--status", "succeeded", *db)
    assert (done.returncode, done.stdout.strip()) == (0, "0")
