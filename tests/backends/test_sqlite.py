"""What only the SQLite backend promises: its URL forms, clear errors for a file it cannot use,
durable settings, wake-ups by polling, and several real processes sharing one file."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stepwise.backends import open_backend
from stepwise.backends.base import (
    FinishRun,
    NewRun,
    RunFilter,
    RunStatus,
    StepFinished,
    StepStatus,
    WriteOp,
)
from stepwise.backends.sqlite.backend import SqliteBackend
from stepwise.errors import ConfigurationError, DatabaseDamaged, DatabaseUnavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    backend = SqliteBackend(f"sqlite:///{tmp_path / 'stepwise.db'}", poll_interval=5.0)
    await backend.open()
    yield backend
    await backend.close()


def new_run(workflow: str = "wf") -> NewRun:
    return NewRun(str(uuid.uuid4()), workflow, None, "{}")


async def test_relative_url_is_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = open_backend("sqlite:///data/nested/stepwise.db")
    assert isinstance(backend, SqliteBackend)
    await backend.open()
    try:
        await backend.create_run(new_run())
    finally:
        await backend.close()
    assert (tmp_path / "data" / "nested" / "stepwise.db").is_file()


async def test_absolute_url_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "runs.db"
    backend = open_backend(f"sqlite:///{path}")
    assert backend.display_url == f"sqlite:///{path}"
    await backend.open()
    await backend.close()
    assert path.is_file()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?m=1"]
)
def test_unusable_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"sqlite:///relative/path\.db"):
        open_backend(url)


async def test_a_path_that_cannot_be_opened_names_the_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'stepwise.db'}"
    backend = open_backend(url)
    with pytest.raises(DatabaseUnavailable) as caught:
        await backend.open()
    assert caught.value.url == url
    assert url in str(caught.value)
    await backend.close()


async def test_a_file_that_is_not_a_database_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(4096))
    backend = open_backend(f"sqlite:///{path}")
    with pytest.raises(DatabaseDamaged, match=r"cannot use the SQLite file .*garbage\.db"):
        await backend.open()
    await backend.close()


async def test_the_file_is_durable_and_shared(sqlite: SqliteBackend, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "stepwise.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    settings = await sqlite._call(  # the connection's own settings are visible only to it
        lambda conn: (
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
            conn.execute("PRAGMA busy_timeout").fetchone()[0],
        )
    )
    assert settings == (2, 1, 30_000)  # synchronous=FULL, foreign keys on, 30 s busy timeout


async def test_wait_for_work_wakes_at_once_for_work_made_here(sqlite: SqliteBackend) -> None:
    waiting = asyncio.create_task(sqlite.wait_for_work(60.0))
    await asyncio.sleep(0)
    begun = time.monotonic()
    await sqlite.create_run(new_run())
    await asyncio.wait_for(waiting, 2.0)  # the poll interval is 5 s: only the wake-up explains it
    assert time.monotonic() - begun < 2.0


async def test_wait_for_work_polls_after_the_poll_interval(tmp_path: Path) -> None:
    backend = SqliteBackend(f"sqlite:///{tmp_path / 'poll.db'}", poll_interval=0.05)
    await backend.open()
    try:
        begun = time.monotonic()
        await backend.wait_for_work(30.0)
        assert time.monotonic() - begun < 1.0
    finally:
        await backend.close()


async def test_watch_asks_to_reread_everything_after_a_poll_interval(tmp_path: Path) -> None:
    backend = SqliteBackend(f"sqlite:///{tmp_path / 'watch.db'}", poll_interval=0.05)
    await backend.open()
    try:
        async with backend.watch() as changes:
            begun = time.monotonic()
            assert await changes.next(30.0) is None
            assert time.monotonic() - begun < 1.0
    finally:
        await backend.close()


# ---- several processes on one file ------------------------------------------------------------


async def work_off(url: str, worker: str) -> None:
    """One worker process: say "ready", then claim runs, complete a step and finish each one,
    printing its id, until there was nothing to claim for a second."""
    backend = SqliteBackend(url, poll_interval=0.02)
    await backend.open()
    print("ready", flush=True)
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 1.0:
            claimed = await backend.claim_runs(worker, ["wf"], 2, 30.0)
            if not claimed:
                await backend.wait_for_work(0.05)
                continue
            idle_since = time.monotonic()
            at = datetime.now(UTC)
            ops: list[WriteOp] = []
            for item in claimed:
                token, run_id = item.lease_token, item.run.id
                ops.append(
                    StepFinished(token, run_id, "s", StepStatus.COMPLETED, "1", None, 1, at, at)
                )
                ops.append(FinishRun(token, run_id, RunStatus.SUCCEEDED, json.dumps(worker)))
            result = await backend.write(ops)
            assert not result.rejected, result
            for item in claimed:
                print(item.run.id, flush=True)
    finally:
        await backend.close()


async def spawn_worker(url: str, name: str) -> asyncio.subprocess.Process:
    code = (
        f"import asyncio; from {__name__} import work_off; asyncio.run(work_off({url!r}, {name!r}))"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert ready == b"ready\n", ready
    return proc


async def test_several_processes_share_one_file(sqlite: SqliteBackend) -> None:
    procs = await asyncio.gather(*(spawn_worker(sqlite.display_url, f"p{i}") for i in range(3)))
    runs = [new_run() for _ in range(150)]
    for run in runs:
        await sqlite.create_run(run)
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()

    claimed = Counter(line for out, _ in outputs for line in out.decode().split())
    assert set(claimed) == {run.id for run in runs}
    assert max(claimed.values()) == 1
    done = await sqlite.list_runs(RunFilter(statuses=[RunStatus.SUCCEEDED], limit=1000))
    assert len(done) == len(runs)
    assert all(run.claims == 1 for run in done)
    assert len({run.output for run in done}) >= 2, "the processes did not overlap"
