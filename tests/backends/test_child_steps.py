"""The storage side of child workflows, on both backends: a child's end is stored in its
parent's step by the transaction that ends it, and makes the parent due only once no child it
awaits still runs; a child that ends after its parent's wait timed out leaves the step alone.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from stepwise.backends.base import (
    Backend,
    ClaimedRun,
    FinishRun,
    NewChild,
    NewRun,
    RunRecord,
    RunStatus,
    StepStatus,
    SuspendRun,
)

NEVER = datetime(9999, 1, 1, tzinfo=UTC)


async def _claim(backend: Backend, workflow: str) -> ClaimedRun:
    (claimed,) = await backend.claim_runs("w", [workflow], 1, 60)
    return claimed


async def _parent_with_children(
    backend: Backend, wake_at: datetime, count: int
) -> tuple[ClaimedRun, list[RunRecord]]:
    parent_id = str(uuid.uuid4())
    await backend.create_run(NewRun(parent_id, "parent", None, "{}"))
    parent = await _claim(backend, "parent")
    children = []
    for n in range(count):
        new = NewRun(str(uuid.uuid4()), "child", None, str(n))
        child = await backend.start_child(
            NewChild(parent.lease_token, parent_id, f"kid-{n}", new, wake_at)
        )
        assert child is not None
        assert (child.parent_id, child.parent_step) == (parent_id, f"kid-{n}")
        children.append(child)
    await backend.write([SuspendRun(parent.lease_token, parent_id, wake_at)])
    return parent, children


async def _end(backend: Backend, output: str) -> None:
    child = await _claim(backend, "child")
    await backend.write([FinishRun(child.lease_token, child.run.id, RunStatus.SUCCEEDED, output)])


async def test_the_last_awaited_child_to_end_makes_its_parent_due(backend: Backend) -> None:
    parent, children = await _parent_with_children(backend, NEVER, 2)
    await _end(backend, '"first"')
    waiting = await backend.get_run(parent.run.id)
    assert waiting is not None
    assert (waiting.status, waiting.available_at) == (RunStatus.SLEEPING, NEVER)

    await _end(backend, '"second"')
    due = await backend.get_run(parent.run.id)
    assert due is not None
    assert due.status is RunStatus.SLEEPING
    assert due.available_at <= datetime.now(UTC)
    steps = await backend.list_steps(parent.run.id)
    assert sorted((s.key, s.status, s.output, s.child_id) for s in steps) == [
        ("kid-0", StepStatus.COMPLETED, '"first"', children[0].id),
        ("kid-1", StepStatus.COMPLETED, '"second"', children[1].id),
    ]


async def test_a_child_ending_after_the_wait_timed_out_leaves_the_step(backend: Backend) -> None:
    timeout_at = datetime.now(UTC) + timedelta(seconds=0.3)
    parent, _ = await _parent_with_children(backend, timeout_at, 1)
    await asyncio.sleep(0.5)
    await _end(backend, '"late"')
    (step,) = await backend.list_steps(parent.run.id)
    assert (step.status, step.output) == (StepStatus.SLEEPING, None)
    run = await backend.get_run(parent.run.id)
    assert run is not None
    assert run.available_at == timeout_at  # due at its timeout, as it was
