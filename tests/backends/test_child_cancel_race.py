"""Postgres: a child's end racing its parent's calls.

A child's end locks the child, then (its trigger) the parent, and stores the end in the
parent's step. A cancel locks the parent, then (its cascade) the children: taken in those
orders the two would wait for each other until Postgres aborts one (``deadlock detected``), so
a cancel locks the unfinished descendants first, deepest first, then the parent. A parent that
starts awaiting a child (``await_child``) waits for the parent's lock, then reads the step with
a snapshot taken after it: it sees the end that committed meanwhile, never the step as it was.
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


async def test_awaiting_a_child_that_ends_meanwhile_reads_its_end(postgres_url: str) -> None:
    backend = PostgresBackend(postgres_url)
    await backend.open()
    try:
        parent_id = str(uuid.uuid4())
        await backend.create_run(NewRun(parent_id, "parent", None, "{}"))
        parent = await _claimed(backend, "parent")
        child_run = NewRun(str(uuid.uuid4()), "child", None, "{}")
        child = await backend.start_child(
            NewChild(parent.lease_token, parent_id, "kid", child_run, None)  # started only
        )
        assert child is not None

        ending = await asyncpg.connect(postgres_url, server_settings={"search_path": "stepwise"})
        try:
            # The child ends in a transaction still open: its trigger holds the parent's lock.
            transaction = ending.transaction()
            await transaction.start()
            await ending.execute(
                "UPDATE runs SET status = 'succeeded', output = '7', finished_at = now() "
                "WHERE id = $1",
                child.id,
            )
            never = datetime(9999, 1, 1, tzinfo=UTC)
            awaiting = asyncio.create_task(
                backend.await_child(parent.lease_token, parent_id, "kid", never)
            )
            await asyncio.sleep(0.3)  # waiting for the parent's lock
            assert not awaiting.done()
            await transaction.commit()
            step = await asyncio.wait_for(awaiting, 30)
        finally:
            await ending.close()

        assert step is not None
        assert (step.status, step.output, step.child_id) == (StepStatus.COMPLETED, "7", child.id)
    finally:
        await backend.close()
