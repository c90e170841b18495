"""Retry, fork and retention at the storage seam, on both backends: ``resume_run`` keeps
completed steps and erases the rest, records the closed attempt and waits out the last
holder's lease; ``fork_run`` copies the completed steps stored before a step; ``prune_runs``
deletes only finished runs past their age, in batches, with their steps and attempts."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from stepwise.backends.base import (
    Backend,
    ClaimedRun,
    FinishRun,
    RunStatus,
    StepFinished,
    StepStarted,
    StepStatus,
)
from tests.backends.conftest import BackendFactory
from tests.backends.test_conformance import (
    LONG,
    SHORT,
    claim_one,
    create,
    eventually,
    get,
    now,
    passed,
    started,
)


def new_id() -> str:
    return str(uuid.uuid4())


def finished(claimed: ClaimedRun, key: str, status: StepStatus, attempts: int = 1) -> StepFinished:
    ok = status is StepStatus.COMPLETED
    return StepFinished(
        claimed.lease_token,
        claimed.run.id,
        key,
        status,
        json.dumps(key) if ok else None,
        None if ok else json.dumps({"type": "ConnectionError", "message": "downstream is down"}),
        attempts,
        now(),
        now(),
    )


async def failed_run(backend: Backend) -> ClaimedRun:
    """A run that completed step a, then failed in step b after 3 attempts."""
    claimed = await started(backend)
    error = json.dumps({"type": "StepFailed", "message": "step 'b' failed"})
    result = await backend.write(
        [
            finished(claimed, "a", StepStatus.COMPLETED),
            finished(claimed, "b", StepStatus.FAILED, attempts=3),
            FinishRun(claimed.lease_token, claimed.run.id, RunStatus.FAILED, error=error),
        ]
    )
    assert result.rejected == set()
    return claimed


async def test_resume_keeps_completed_steps_erases_failed_ones_and_records_the_attempt(
    backend: Backend,
) -> None:
    claimed = await failed_run(backend)
    run_id = claimed.run.id
    resumed = await backend.resume_run(run_id, None)
    assert resumed is not None
    run, changed = resumed
    assert changed
    assert (run.status, run.attempt, run.first_attempt) == (RunStatus.PENDING, 2, 2)
    assert (run.error, run.finished_at, run.output) == (None, None, None)
    assert [s.key for s in await backend.list_steps(run_id)] == ["a"]
    [attempt] = await backend.list_attempts(run_id)
    assert (attempt.attempt, attempt.status) == (1, RunStatus.FAILED)
    assert attempt.error is not None
    assert json.loads(attempt.error)["type"] == "StepFailed"
    assert attempt.finished_at is not None
    again = await claim_one(backend)
    assert again.run.id == run_id
    assert [(s.key, s.status) for s in again.steps] == [("a", StepStatus.COMPLETED)]


async def test_a_second_retry_keeps_both_earlier_attempts(backend: Backend) -> None:
    claimed = await failed_run(backend)
    assert await backend.resume_run(claimed.run.id, None) is not None
    again = await claim_one(backend)
    await backend.write([FinishRun(again.lease_token, again.run.id, RunStatus.CANCELED)])
    resumed = await backend.resume_run(claimed.run.id, None)
    assert resumed is not None
    assert resumed[0].attempt == 3
    history = await backend.list_attempts(claimed.run.id)
    assert [(a.attempt, a.status) for a in history] == [
        (1, RunStatus.FAILED),
        (2, RunStatus.CANCELED),
    ]


async def test_a_canceled_run_resumes_only_after_its_holders_lease(
    backend_factory: BackendFactory,
) -> None:
    """The holder of a canceled run may start steps until its lease lapses (by its own clock,
    core.lease): the retried run is claimable only after that, and the holder's writes stay
    refused before and after the next claim."""
    backend, other = await backend_factory(), await backend_factory()
    claimed = await started(backend, lease=LONG)
    run_id, token = claimed.run.id, claimed.lease_token
    await backend.write(
        [finished(claimed, "a", StepStatus.COMPLETED), StepStarted(token, run_id, "b", 1, now())]
    )
    await backend.cancel_run(run_id)
    resumed = await backend.resume_run(run_id, None)
    assert resumed is not None
    assert resumed[1]
    assert resumed[0].available_at > now() + timedelta(seconds=LONG / 2)
    assert await other.claim_runs("w2", ["wf"], 1, LONG) == []
    late = await backend.write([finished(claimed, "b", StepStatus.COMPLETED)])
    assert late.rejected == {token}
    assert [(s.key, s.status) for s in await backend.list_steps(run_id)] == [
        ("a", StepStatus.COMPLETED)
    ]


async def test_a_canceled_run_with_a_lapsed_lease_is_claimed_again(
    backend_factory: BackendFactory,
) -> None:
    backend, other = await backend_factory(), await backend_factory()
    claimed = await started(backend, lease=SHORT)
    run_id, token = claimed.run.id, claimed.lease_token
    await backend.write([StepStarted(token, run_id, "b", 1, now())])
    await backend.cancel_run(run_id)
    assert await backend.resume_run(run_id, None) is not None
    again = (await eventually(lambda: other.claim_runs("w2", ["wf"], 1, LONG)))[0]
    assert again.run.id == run_id
    assert again.steps == []
    late = await backend.write([finished(claimed, "b", StepStatus.COMPLETED)])
    assert late.rejected == {token}
    assert await backend.list_steps(run_id) == []


async def test_a_deadline_failed_run_resumes_without_its_passed_deadline(
    backend: Backend,
) -> None:
    deadline = now() + timedelta(seconds=0.3)
    run = await create(backend, deadline_at=deadline)
    claimed = await claim_one(backend, lease=SHORT)
    await backend.write([StepStarted(claimed.lease_token, run.id, "slow", 1, now())])
    await passed(deadline)
    assert await backend.expire_runs() == 1
    assert [s.status for s in await backend.list_steps(run.id)] == [StepStatus.CANCELED]
    resumed = await backend.resume_run(run.id, None)
    assert resumed is not None
    assert resumed[0].deadline_at is None
    assert await backend.list_steps(run.id) == []
    [attempt] = await backend.list_attempts(run.id)
    assert attempt.error is not None
    assert json.loads(attempt.error)["type"] == "DeadlineExceeded"
    again = await eventually(lambda: backend.claim_runs("w1", ["wf"], 1, LONG))
    assert again[0].run.id == run.id


async def test_a_retry_can_set_a_new_deadline(backend: Backend) -> None:
    claimed = await failed_run(backend)
    deadline = now() + timedelta(hours=1)
    resumed = await backend.resume_run(claimed.run.id, deadline)
    assert resumed is not None
    assert resumed[0].deadline_at == deadline


async def test_only_failed_and_canceled_runs_resume(backend: Backend) -> None:
    pending = await create(backend)
    assert await backend.resume_run(pending.id, None) == (await get(backend, pending.id), False)
    claimed = await claim_one(backend)
    resumed = await backend.resume_run(claimed.run.id, None)
    assert resumed is not None
    assert resumed[0].status is RunStatus.RUNNING
    assert not resumed[1]
    await backend.write([FinishRun(claimed.lease_token, claimed.run.id, RunStatus.SUCCEEDED)])
    resumed = await backend.resume_run(claimed.run.id, None)
    assert resumed is not None
    assert resumed[0].status is RunStatus.SUCCEEDED
    assert not resumed[1]
    assert await backend.list_attempts(claimed.run.id) == []
    assert await backend.resume_run("00000000-0000-4000-8000-000000000000", None) is None
    assert await backend.resume_run("not-a-uuid", None) is None


async def test_fork_copies_the_completed_steps_stored_before_the_named_step(
    backend: Backend,
) -> None:
    claimed = await failed_run(backend)
    run_id = claimed.run.id
    source = await get(backend, run_id)
    for from_step, expected in (("a", []), ("b", ["a"])):
        fork = await backend.fork_run(new_id(), run_id, from_step)
        assert fork is not None
        assert (fork.status, fork.forked_from, fork.workflow) == (RunStatus.PENDING, run_id, "wf")
        assert (fork.input, fork.version, fork.attempt) == (source.input, source.version, 1)
        steps = await backend.list_steps(fork.id)
        assert [s.key for s in steps] == expected
        assert all(s.status is StepStatus.COMPLETED and s.output == '"a"' for s in steps)
    assert await backend.fork_run(new_id(), new_id(), "a") is None
    assert await get(backend, run_id) == source


async def test_fork_keeps_the_first_started_order(backend: Backend) -> None:
    claimed = await started(backend)
    keys = ["z", "m", "a", "q", "last"]
    await backend.write([finished(claimed, key, StepStatus.COMPLETED) for key in keys])
    fork = await backend.fork_run(new_id(), claimed.run.id, "last")
    assert fork is not None
    assert [s.key for s in await backend.list_steps(fork.id)] == keys[:-1]


async def test_prune_deletes_old_finished_runs_in_batches_with_their_steps(
    backend: Backend,
) -> None:
    ended = []
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED):
        claimed = await started(backend)
        await backend.write(
            [
                finished(claimed, "a", StepStatus.COMPLETED),
                FinishRun(claimed.lease_token, claimed.run.id, status),
            ]
        )
        ended.append(claimed.run.id)
    assert await backend.resume_run(ended[1], None) is not None  # history to delete, too
    retried = await claim_one(backend)
    await backend.write([FinishRun(retried.lease_token, retried.run.id, RunStatus.FAILED)])
    running = (await started(backend)).run.id
    pending = (await create(backend)).id
    assert await backend.prune_runs(3600.0, 10) == 0
    await passed(max([(await get(backend, run_id)).finished_at or now() for run_id in ended]))
    assert [await backend.prune_runs(0.0, 2), await backend.prune_runs(0.0, 2)] == [2, 1]
    assert await backend.prune_runs(0.0, 2) == 0
    for run_id in ended:
        assert await backend.get_run(run_id) is None
        assert await backend.list_steps(run_id) == []
        assert await backend.list_attempts(run_id) == []
    assert {(await get(backend, run_id)).status for run_id in (running, pending)} == {
        RunStatus.RUNNING,
        RunStatus.PENDING,
    }
