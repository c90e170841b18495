"""Postgres: canceling a parent while one of its children is ending does not deadlock.

A child's end locks the child, then (its trigger) the parent; a cancel locks the parent, then
(its cascade) the children. Taken in those orders the two wait for each other until Postgres
aborts one (``deadlock detected``), and a user's cancel would fail. The cancel therefore locks
the unfinished descendants first, deepest first, then the parent: the child's end completes
and the cancel goes on after it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from stepwise.backends.base import ClaimedRun, NewChild, NewRun, RunStatus, StepStatus
from stepwise.backends.postgres.backend import PostgresBackend

pytestmark = pytest.mark.postgres


async def _claimed(backend: PostgresBackend, workflow: str) -> ClaimedRun:
    (claimed,) = await backend.claim_runs("w", [workflow], 1, 60)
    return claimed


async def test_a_cancel_racing_a_child_that_ends_cancels_without_a_deadlock(
    postgres_url: str,
) -> None:
    backend = PostgresBackend(postgres_url)
    await backend.open()
    try:
        parent_id = str(uuid.uuid4())
        await backend.create_run(NewRun(parent_id, "parent", None, "{}"))
        parent = await _claimed(backend, "parent")
        child_run = NewRun(str(uuid.uuid4()), "child", None, "{}")
        never = datetime(9999, 1, 1, tzinfo=UTC)
        child = await backend.start_child(
            NewChild(parent.lease_token, parent_id, "kid", child_run, never)
        )
        assert child is not None

        ending = await asyncpg.connect(postgres_url, server_settings={"search_path": "stepwise"})
        try:
            # The child's end, as a worker's write would make it: the child is locked first.
            transaction = ending.transaction()
            await transaction.start()
            await ending.execute("SELECT 1 FROM runs WHERE id = $1 FOR NO KEY UPDATE", child.id)
            cancel = asyncio.create_task(backend.cancel_run(parent_id))
            await asyncio.sleep(0.3)  # the cancel is now waiting for a lock
            assert not cancel.done()
            await ending.execute(
                "UPDATE runs SET status = 'succeeded', output = '7', finished_at = now() "
                "WHERE id = $1",
                child.id,
            )
            await transaction.commit()
            canceled = await asyncio.wait_for(cancel, 30)
        finally:
            await ending.close()

        assert canceled is not None
        assert canceled.status is RunStatus.CANCELED
        ended = await backend.get_run(child.id)
        assert ended is not None
        assert ended.status is RunStatus.SUCCEEDED  # it ended before the cancel reached it
        (step,) = await backend.list_steps(parent_id)
        assert (step.status, step.output) == (StepStatus.COMPLETED, "7")
    finally:
        await backend.close()
