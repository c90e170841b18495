"""A run that ends while steps are in flight (canceled, or failed by its deadline) marks those
steps ``canceled``: no step stays ``running`` or ``sleeping`` forever inside a finished run, and
the holder's late writes cannot bring them back. Both backends; and the SQLite migration that
allows the status keeps every stored step, in order."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from stepwise import Client, RunStatus, StepStatus, workflow
from stepwise.backends import migrations, open_backend
from stepwise.backends.base import Backend, ClaimedRun, FinishRun, StepSleeping, StepStarted
from stepwise.core.registry import Registry
from stepwise.worker.worker import Worker
from tests.backends.test_conformance import (
    claim_one,
    completed,
    create,
    get,
    now,
    passed,
    started,
)


async def in_flight(backend: Backend, deadline_in: float | None = None) -> tuple[ClaimedRun, str]:
    """A claimed run with one completed, one running and one sleeping step."""
    deadline = None if deadline_in is None else now() + timedelta(seconds=deadline_in)
    if deadline is None:
        claimed = await started(backend)
    else:
        await create(backend, deadline_at=deadline)
        claimed = await claim_one(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    result = await backend.write(
        [
            completed(claimed, "done"),
            StepStarted(token, run_id, "busy", 1, now()),
            StepSleeping(token, run_id, "nap", now() + timedelta(hours=1), now()),
        ]
    )
    assert result.rejected == set()
    return claimed, run_id


async def statuses(backend: Backend, run_id: str) -> dict[str, StepStatus]:
    return {step.key: step.status for step in await backend.list_steps(run_id)}


async def test_cancel_marks_the_steps_in_flight_canceled(backend: Backend) -> None:
    claimed, run_id = await in_flight(backend)
    canceled = await backend.cancel_run(run_id)
    assert canceled is not None
    assert canceled.status is RunStatus.CANCELED
    assert await statuses(backend, run_id) == {
        "done": StepStatus.COMPLETED,
        "busy": StepStatus.CANCELED,
        "nap": StepStatus.CANCELED,
    }
    for step in await backend.list_steps(run_id):
        assert step.finished_at is not None
    # The holder finishes its step late: fenced out, the step stays canceled.
    assert (await backend.write([completed(claimed, "busy")])).rejected == {claimed.lease_token}
    assert (await statuses(backend, run_id))["busy"] is StepStatus.CANCELED


async def test_cancel_of_a_finished_run_leaves_its_steps_alone(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    await backend.write([StepStarted(token, run_id, "x", 1, now())])
    await backend.write([FinishRun(token, run_id, RunStatus.FAILED, error='{"type": "E"}')])
    finished = await backend.cancel_run(run_id)
    assert finished is not None
    assert finished.status is RunStatus.FAILED
    assert await statuses(backend, run_id) == {"x": StepStatus.RUNNING}


async def test_a_run_failed_by_its_deadline_marks_its_steps_in_flight_canceled(
    backend: Backend,
) -> None:
    _, run_id = await in_flight(backend, deadline_in=0.3)
    untouched, _ = await in_flight(backend)
    await passed(now() + timedelta(seconds=0.3))
    assert await backend.expire_runs() == 1
    assert (await get(backend, run_id)).status is RunStatus.FAILED
    assert await statuses(backend, run_id) == {
        "done": StepStatus.COMPLETED,
        "busy": StepStatus.CANCELED,
        "nap": StepStatus.CANCELED,
    }
    assert (await statuses(backend, untouched.run.id))["busy"] is StepStatus.RUNNING


async def test_a_worker_canceled_mid_step_leaves_no_step_running(backend_url: str) -> None:
    registry = Registry()
    release = asyncio.Event()

    async def blocked() -> str:
        await release.wait()
        return "late"

    @workflow("cancel-mid-step", registry=registry)
    async def cancel_mid_step(ctx: Any) -> None:
        await ctx.step.run("first", lambda: "ok")
        await ctx.step.run("blocked", blocked)

    async with Client.connect(backend_url) as client:
        worker = Worker(client.backend, registry, lease_seconds=30, poll_interval=0.05)
        stop = asyncio.Event()
        serving = asyncio.create_task(worker.run(stop))
        try:
            run = await client.start(cancel_mid_step)
            limit = time.monotonic() + 15
            while [s.key for s in await client.steps(run.id)] != ["first", "blocked"]:
                assert time.monotonic() < limit, "the step never started"
                await asyncio.sleep(0.02)
            await client.cancel(run.id)
            release.set()
            while worker.active:
                assert time.monotonic() < limit, "the worker kept executing a canceled run"
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await serving
        steps = {step.key: step.status for step in await client.steps(run.id)}
    assert steps == {"first": StepStatus.COMPLETED, "blocked": StepStatus.CANCELED}


async def test_the_sqlite_migration_keeps_every_step_in_order(tmp_path: Path) -> None:
    """A file migrated before steps could be canceled: the table is rebuilt, nothing is lost."""
    path = tmp_path / "old.db"
    at = "2025-01-01T00:00:00.000000Z"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE stepwise_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for migration in migrations.discover("stepwise.backends.sqlite.migrations"):
            if migration.version < 4:
                conn.executescript(migration.sql)
                conn.execute(
                    "INSERT INTO stepwise_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, at),
                )
        conn.execute(
            "INSERT INTO runs (id, workflow, status, input, lease_token, available_at, "
            "created_at, updated_at) VALUES ('r1', 'wf', 'running', '{}', 't1', ?, ?, ?)",
            (at, at, at),
        )
        conn.executemany(
            "INSERT INTO steps (seq, run_id, key, status, output, attempts, started_at) "
            "VALUES (?, 'r1', ?, ?, ?, 1, ?)",
            [(7, "z", "completed", '"first"', at), (9, "a", "running", None, at)],
        )
    backend = open_backend(f"sqlite:///{path}")
    await backend.open()
    try:
        steps = await backend.list_steps("r1")
        assert [(s.key, s.status, s.output) for s in steps] == [
            ("z", StepStatus.COMPLETED, '"first"'),
            ("a", StepStatus.RUNNING, None),
        ]
        await backend.cancel_run("r1")
        assert await statuses(backend, "r1") == {
            "z": StepStatus.COMPLETED,
            "a": StepStatus.CANCELED,
        }
    finally:
        await backend.close()
