"""The one conformance suite: every test runs against SQLite and Postgres.

It holds both backends to the contract in ``stepwise/backends/base.py`` and the rules of the
shared schema: claims, leases and fencing, step and run transitions, workers, wake-ups.
Leases that must expire are short (0.2 s) and the tests wait for the expiry as a condition;
leases that must hold are long (30 s).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from stepwise.backends.base import (
    Backend,
    ClaimedRun,
    FinishRun,
    NewRun,
    ReleaseRun,
    RetryRun,
    RunFilter,
    RunRecord,
    RunStatus,
    StepFinished,
    StepRecord,
    StepSleeping,
    StepStarted,
    StepStatus,
    SuspendRun,
    WorkerInfo,
)
from stepwise.backends.sqlite.backend import SqliteBackend
from tests.backends.conftest import BackendFactory

T = TypeVar("T")

WF = "wf"
LONG = 30.0
SHORT = 0.2
WAIT = 15.0
"""Upper bound for conditions that should hold within a fraction of a second."""


# ---- helpers -----------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def new_run(
    workflow: str = WF,
    *,
    version: str | None = None,
    idempotency_key: str | None = None,
    deadline_at: datetime | None = None,
    available_at: datetime | None = None,
) -> NewRun:
    return NewRun(
        str(uuid.uuid4()),
        workflow,
        version,
        json.dumps({"n": 1}),
        idempotency_key=idempotency_key,
        deadline_at=deadline_at,
        available_at=available_at,
    )


async def create(
    backend: Backend,
    workflow: str = WF,
    *,
    deadline_at: datetime | None = None,
    available_at: datetime | None = None,
) -> RunRecord:
    record, created = await backend.create_run(
        new_run(workflow, deadline_at=deadline_at, available_at=available_at)
    )
    assert created
    return record


async def claim_one(
    backend: Backend, workflow: str = WF, lease: float = LONG, worker: str = "w1"
) -> ClaimedRun:
    claimed = await backend.claim_runs(worker, [workflow], 1, lease)
    assert len(claimed) == 1, claimed
    return claimed[0]


async def started(backend: Backend, workflow: str = WF, lease: float = LONG) -> ClaimedRun:
    """A new run of ``workflow``, claimed."""
    run = await create(backend, workflow)
    claimed = await claim_one(backend, workflow, lease)
    assert claimed.run.id == run.id
    return claimed


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = WAIT) -> T:
    """The first truthy result of ``probe``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.02)


async def passed(moment: datetime) -> None:
    """Wait until the clock is past ``moment``."""

    async def is_past() -> bool:
        return now() > moment

    await eventually(is_past)


async def reclaimed(other: Backend, workflow: str = WF, lease: float = LONG) -> ClaimedRun:
    """Wait until ``other`` claims a run whose lease expired."""
    claimed = await eventually(lambda: other.claim_runs("w2", [workflow], 1, lease))
    return claimed[0]


async def get(backend: Backend, run_id: str) -> RunRecord:
    run = await backend.get_run(run_id)
    assert run is not None
    return run


async def step(backend: Backend, run_id: str, key: str) -> StepRecord:
    steps = {s.key: s for s in await backend.list_steps(run_id)}
    return steps[key]


def completed(claimed: ClaimedRun, key: str, output: str = '"ok"') -> StepFinished:
    at = now()
    return StepFinished(
        claimed.lease_token, claimed.run.id, key, StepStatus.COMPLETED, output, None, 1, at, at
    )


def failed(claimed: ClaimedRun, key: str, attempts: int = 1) -> StepFinished:
    at = now()
    error = json.dumps({"type": "ValueError", "message": "boom"})
    return StepFinished(
        claimed.lease_token, claimed.run.id, key, StepStatus.FAILED, None, error, attempts, at, at
    )


def assert_utc(*moments: datetime | None) -> None:
    for moment in moments:
        if moment is not None:
            assert moment.tzinfo is not None
            assert moment.utcoffset() == timedelta(0)


# ---- create / get / list -----------------------------------------------------------------------


async def test_create_and_get_run(backend: Backend) -> None:
    before = now()
    new = new_run(version="v2")
    record, created = await backend.create_run(new)
    after = now()

    assert created
    assert record == await backend.get_run(new.id)
    assert (record.id, record.workflow, record.version, record.input) == (
        new.id,
        WF,
        "v2",
        new.input,
    )
    assert record.status is RunStatus.PENDING
    assert (record.output, record.error, record.idempotency_key, record.deadline_at) == (
        None,
        None,
        None,
        None,
    )
    assert (record.attempt, record.claims) == (1, 0)
    assert record.started_at is None
    assert record.finished_at is None
    slack = timedelta(seconds=1)
    assert before - slack <= record.created_at <= after + slack
    assert before - slack <= record.available_at <= after + slack
    assert_utc(record.created_at, record.available_at, record.updated_at)


async def test_create_run_keeps_given_times(backend: Backend) -> None:
    deadline = now() + timedelta(hours=1)
    available = now() + timedelta(minutes=5)
    record = await create(backend, deadline_at=deadline, available_at=available)
    fetched = await get(backend, record.id)
    assert fetched.deadline_at == deadline
    assert fetched.available_at == available
    assert_utc(fetched.deadline_at, fetched.available_at)


async def test_get_unknown_run_is_none(backend: Backend) -> None:
    assert await backend.get_run(str(uuid.uuid4())) is None


async def test_idempotency_key_returns_the_existing_run(backend: Backend) -> None:
    first, created = await backend.create_run(new_run(idempotency_key="order-1"))
    assert created
    again, created = await backend.create_run(new_run(idempotency_key="order-1"))
    assert not created
    assert again == first

    other, created = await backend.create_run(new_run("other-wf", idempotency_key="order-1"))
    assert created
    assert other.id != first.id

    plain = [await create(backend), await create(backend)]
    assert plain[0].id != plain[1].id
    assert len(await backend.list_runs(RunFilter())) == 4


async def test_list_runs_newest_first_with_filters(backend: Backend) -> None:
    a1 = await create(backend, "a")
    b1 = await create(backend, "b")
    a2 = await create(backend, "a")
    a3 = await create(backend, "a")
    await claim_one(backend, "a")  # a1 is the oldest: it becomes running
    await backend.cancel_run(a3.id)

    def ids(records: list[RunRecord]) -> list[str]:
        return [r.id for r in records]

    assert ids(await backend.list_runs(RunFilter())) == [a3.id, a2.id, b1.id, a1.id]
    assert ids(await backend.list_runs(RunFilter(workflow="a"))) == [a3.id, a2.id, a1.id]
    assert ids(await backend.list_runs(RunFilter(limit=2))) == [a3.id, a2.id]
    pending = RunFilter(statuses=[RunStatus.PENDING])
    assert ids(await backend.list_runs(pending)) == [a2.id, b1.id]
    several = RunFilter(workflow="a", statuses=[RunStatus.RUNNING, RunStatus.CANCELED])
    assert ids(await backend.list_runs(several)) == [a3.id, a1.id]
    assert await backend.list_runs(RunFilter(workflow="none")) == []


async def test_list_steps_in_first_started_order(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    assert await backend.list_steps(run_id) == []

    for key in ("a", "c", "b"):
        await backend.write([StepStarted(token, run_id, key, 1, now())])
    await backend.write([completed(claimed, "b"), failed(claimed, "a")])
    await backend.write([StepStarted(token, run_id, "a", 2, now()), completed(claimed, "d")])
    await backend.write([completed(claimed, "a")])

    steps = await backend.list_steps(run_id)
    assert [s.key for s in steps] == ["a", "c", "b", "d"]
    assert all(s.run_id == run_id for s in steps)
    assert await backend.list_steps(str(uuid.uuid4())) == []


# ---- claims ------------------------------------------------------------------------------------


async def test_claim_takes_only_the_listed_workflows(backend: Backend) -> None:
    a = await create(backend, "a")
    b = await create(backend, "b")
    await create(backend, "c")

    assert await backend.claim_runs("w1", [], 10, LONG) == []
    assert await backend.claim_runs("w1", ["unknown"], 10, LONG) == []
    claimed = await backend.claim_runs("w1", ["a", "b"], 10, LONG)
    assert {c.run.id for c in claimed} == {a.id, b.id}
    assert await backend.claim_runs("w1", ["a", "b"], 10, LONG) == []


async def test_claim_respects_limit_and_takes_the_oldest_first(backend: Backend) -> None:
    base_time = now()
    middle = await create(backend, available_at=base_time - timedelta(seconds=2))
    newest = await create(backend, available_at=base_time - timedelta(seconds=1))
    oldest = await create(backend, available_at=base_time - timedelta(seconds=3))

    first = await backend.claim_runs("w1", [WF], 2, LONG)
    assert [c.run.id for c in first] == [oldest.id, middle.id]
    second = await backend.claim_runs("w1", [WF], 2, LONG)
    assert [c.run.id for c in second] == [newest.id]
    assert await backend.claim_runs("w1", [WF], 0, LONG) == []


async def test_claim_leases_the_run(backend: Backend) -> None:
    run = await create(backend)
    before = now()
    claimed = await claim_one(backend)
    after = now()

    assert claimed.run.id == run.id
    assert claimed.run.status is RunStatus.RUNNING
    assert claimed.run.claims == 1
    assert claimed.run.started_at is not None
    slack = timedelta(seconds=1)
    assert before - slack <= claimed.run.started_at <= after + slack
    assert claimed.steps == []
    assert claimed.lease_token
    assert await get(backend, run.id) == claimed.run


async def test_claim_waits_until_available_at(backend: Backend) -> None:
    run = await create(backend, available_at=now() + timedelta(seconds=0.5))
    assert await backend.claim_runs("w1", [WF], 1, LONG) == []
    claimed = await eventually(lambda: backend.claim_runs("w1", [WF], 1, LONG))
    assert claimed[0].run.id == run.id
    assert now() >= claimed[0].run.available_at


async def test_a_valid_lease_is_never_claimed_again(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    claimed = await started(one)
    assert await two.claim_runs("w2", [WF], 10, LONG) == []
    assert await one.claim_runs("w1", [WF], 10, LONG) == []
    assert (await get(two, claimed.run.id)).claims == 1


async def test_concurrent_claimers_never_take_one_run_twice(
    backend_factory: BackendFactory,
) -> None:
    one, two = await backend_factory(), await backend_factory()
    taken: Counter[str] = Counter()
    created: set[str] = set()
    for _ in range(8):
        created.update([(await create(one)).id for _ in range(12)])

        async def drain(backend: Backend, worker: str) -> None:
            while claimed := await backend.claim_runs(worker, [WF], 3, LONG):
                taken.update(c.run.id for c in claimed)

        await asyncio.gather(drain(one, "w1"), drain(two, "w2"), drain(one, "w3"))
    assert set(taken) == created
    assert taken.most_common(1)[0][1] == 1


async def test_each_claim_gets_a_fresh_token(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    run = await create(one)
    tokens = []
    holder = one
    for attempt in range(1, 4):
        claimed = await reclaimed(holder, lease=SHORT)
        assert claimed.run.id == run.id
        assert claimed.run.claims == attempt
        tokens.append(claimed.lease_token)
        holder = two if holder is one else one
    assert len(set(tokens)) == 3


async def test_reclaim_keeps_started_at_and_returns_the_steps(
    backend_factory: BackendFactory,
) -> None:
    one, two = await backend_factory(), await backend_factory()
    first = await started(one, lease=SHORT)
    token, run_id = first.lease_token, first.run.id
    await one.write(
        [
            completed(first, "a", '{"v": 1}'),
            StepStarted(token, run_id, "b", 1, now()),
        ]
    )

    second = await reclaimed(two)
    assert second.run.id == run_id
    assert second.lease_token != token
    assert second.run.claims == 2
    assert second.run.started_at == first.run.started_at
    assert second.run.status is RunStatus.RUNNING
    assert [(s.key, s.status, s.output) for s in second.steps] == [
        ("a", StepStatus.COMPLETED, '{"v": 1}'),
        ("b", StepStatus.RUNNING, None),
    ]
    assert second.steps == await two.list_steps(run_id)


async def test_claim_skips_runs_past_their_deadline(backend: Backend) -> None:
    await create(backend, deadline_at=now() - timedelta(seconds=1))
    live = await create(backend, deadline_at=now() + timedelta(hours=1))
    claimed = await backend.claim_runs("w1", [WF], 10, LONG)
    assert [c.run.id for c in claimed] == [live.id]


# ---- fencing -----------------------------------------------------------------------------------


async def test_a_stale_token_writes_nothing(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    stale = await started(one, lease=SHORT)
    run_id = stale.run.id
    fresh = await reclaimed(two)

    result = await one.write(
        [
            StepStarted(stale.lease_token, run_id, "a", 1, now()),
            completed(stale, "b"),
            StepSleeping(stale.lease_token, run_id, "c", now(), now()),
            FinishRun(stale.lease_token, run_id, RunStatus.SUCCEEDED, '"stale"'),
        ]
    )
    assert result.rejected == {stale.lease_token}
    assert await one.list_steps(run_id) == []
    assert await get(one, run_id) == fresh.run

    result = await two.write(
        [
            completed(fresh, "b"),
            FinishRun(fresh.lease_token, run_id, RunStatus.SUCCEEDED, '"fresh"'),
        ]
    )
    assert result.rejected == set()
    assert (await get(one, run_id)).output == '"fresh"'


async def test_writes_after_cancel_are_rejected(backend: Backend) -> None:
    claimed = await started(backend)
    canceled = await backend.cancel_run(claimed.run.id)
    assert canceled is not None
    assert canceled.status is RunStatus.CANCELED

    result = await backend.write(
        [
            completed(claimed, "a"),
            FinishRun(claimed.lease_token, claimed.run.id, RunStatus.SUCCEEDED),
        ]
    )
    assert result.rejected == {claimed.lease_token}
    assert await backend.list_steps(claimed.run.id) == []
    assert await get(backend, claimed.run.id) == canceled


async def test_unknown_token_is_rejected(backend: Backend) -> None:
    claimed = await started(backend)
    bogus = str(uuid.uuid4())
    result = await backend.write(
        [
            StepStarted(bogus, claimed.run.id, "a", 1, now()),
            ReleaseRun(bogus, claimed.run.id),
        ]
    )
    assert result.rejected == {bogus}
    assert await backend.list_steps(claimed.run.id) == []
    assert (await get(backend, claimed.run.id)).status is RunStatus.RUNNING
    assert (await backend.write([])).rejected == set()


async def test_a_token_only_holds_its_own_run(backend: Backend) -> None:
    mine = await started(backend)
    theirs = await started(backend)
    result = await backend.write([StepStarted(mine.lease_token, theirs.run.id, "a", 1, now())])
    assert result.rejected == {mine.lease_token}
    assert await backend.list_steps(theirs.run.id) == []


async def test_one_batch_fences_each_token_on_its_own(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    stale = await started(one, lease=SHORT)
    await reclaimed(two)
    live = await started(one)

    result = await one.write([completed(stale, "x"), completed(live, "x"), completed(stale, "y")])
    assert result.rejected == {stale.lease_token}
    assert [s.key for s in await one.list_steps(live.run.id)] == ["x"]
    assert await one.list_steps(stale.run.id) == []


async def test_ops_after_a_rejected_op_of_the_same_token_are_rejected(backend: Backend) -> None:
    claimed = await started(backend)
    other = await create(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    result = await backend.write(
        [
            completed(claimed, "before"),
            StepStarted(token, other.id, "wrong-run", 1, now()),
            completed(claimed, "after"),
        ]
    )
    assert result.rejected == {token}
    assert [s.key for s in await backend.list_steps(run_id)] == ["before"]
    assert await backend.list_steps(other.id) == []


async def test_ops_after_the_run_ended_in_the_same_batch_are_rejected(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    result = await backend.write(
        [
            completed(claimed, "a"),
            FinishRun(token, run_id, RunStatus.SUCCEEDED, '"done"'),
            completed(claimed, "late"),
        ]
    )
    assert result.rejected == {token}
    assert [s.key for s in await backend.list_steps(run_id)] == ["a"]
    assert (await get(backend, run_id)).status is RunStatus.SUCCEEDED


async def test_a_completed_step_is_never_overwritten(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    first = await started(one, lease=SHORT)
    token, run_id = first.lease_token, first.run.id
    await one.write([completed(first, "a", '"first"')])
    done = await step(one, run_id, "a")

    result = await one.write(
        [
            StepStarted(token, run_id, "a", 2, now()),
            failed(first, "a", attempts=2),
            StepSleeping(token, run_id, "a", now(), now()),
            completed(first, "a", '"second"'),
        ]
    )
    assert result.rejected == set()
    assert await step(one, run_id, "a") == done

    newer = await reclaimed(two)
    result = await two.write(
        [
            StepStarted(newer.lease_token, run_id, "a", 1, now()),
            completed(newer, "a", '"third"'),
        ]
    )
    assert result.rejected == set()
    assert await step(two, run_id, "a") == done
    assert done.output == '"first"'


# ---- steps -------------------------------------------------------------------------------------


async def test_step_started_and_finished(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    first_start = now() - timedelta(seconds=5)

    await backend.write([StepStarted(token, run_id, "s", 1, first_start)])
    s = await step(backend, run_id, "s")
    assert (s.status, s.attempts, s.started_at, s.finished_at) == (
        StepStatus.RUNNING,
        1,
        first_start,
        None,
    )
    assert (s.output, s.error, s.wake_at) == (None, None, None)

    error = json.dumps({"type": "ValueError", "message": "boom"})
    end = now()
    await backend.write(
        [StepFinished(token, run_id, "s", StepStatus.FAILED, None, error, 1, first_start, end)]
    )
    s = await step(backend, run_id, "s")
    assert (s.status, s.error, s.attempts, s.finished_at) == (StepStatus.FAILED, error, 1, end)

    await backend.write([StepStarted(token, run_id, "s", 2, now())])
    s = await step(backend, run_id, "s")
    assert (s.status, s.attempts, s.started_at) == (StepStatus.RUNNING, 2, first_start)

    end = now()
    await backend.write(
        [StepFinished(token, run_id, "s", StepStatus.COMPLETED, "[1, 2]", None, 2, now(), end)]
    )
    s = await step(backend, run_id, "s")
    assert (s.status, s.output, s.error, s.attempts) == (StepStatus.COMPLETED, "[1, 2]", None, 2)
    assert (s.started_at, s.finished_at) == (first_start, end)
    assert_utc(s.started_at, s.finished_at)


async def test_step_finished_without_a_start(backend: Backend) -> None:
    claimed = await started(backend)
    start, end = now() - timedelta(seconds=1), now()
    await backend.write(
        [
            StepFinished(
                claimed.lease_token,
                claimed.run.id,
                "s",
                StepStatus.COMPLETED,
                "1",
                None,
                3,
                start,
                end,
            )
        ]
    )
    s = await step(backend, claimed.run.id, "s")
    assert (s.status, s.output, s.attempts, s.started_at, s.finished_at) == (
        StepStatus.COMPLETED,
        "1",
        3,
        start,
        end,
    )


async def test_step_sleeping_then_completed(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    begun, wake = now(), now() + timedelta(minutes=1)

    await backend.write([StepSleeping(token, run_id, "nap", wake, begun)])
    s = await step(backend, run_id, "nap")
    assert (s.status, s.wake_at, s.started_at, s.finished_at) == (
        StepStatus.SLEEPING,
        wake,
        begun,
        None,
    )
    assert s.attempts == 1
    assert_utc(s.wake_at)

    await backend.write(
        [StepFinished(token, run_id, "nap", StepStatus.COMPLETED, "null", None, 1, begun, now())]
    )
    s = await step(backend, run_id, "nap")
    assert (s.status, s.output, s.started_at) == (StepStatus.COMPLETED, "null", begun)


# ---- run transitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "output", "error"),
    [
        (RunStatus.SUCCEEDED, '{"total": 3}', None),
        (RunStatus.FAILED, None, '{"type": "ValueError", "message": "boom"}'),
        (RunStatus.CANCELED, None, None),
    ],
)
async def test_finish_run(
    backend: Backend, status: RunStatus, output: str | None, error: str | None
) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    result = await backend.write([FinishRun(token, run_id, status, output, error)])
    assert result.rejected == set()

    run = await get(backend, run_id)
    assert (run.status, run.output, run.error) == (status, output, error)
    assert run.finished_at is not None
    assert run.started_at == claimed.run.started_at
    assert_utc(run.finished_at)
    # The lease is gone: the token holds nothing, and nobody can claim a finished run.
    assert await backend.heartbeat("w1", [token], LONG) == {token}
    assert (await backend.write([completed(claimed, "late")])).rejected == {token}
    assert await backend.claim_runs("w1", [WF], 1, LONG) == []


async def test_suspend_run_sleeps_until_available_at(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    wake = now() + timedelta(seconds=0.5)
    result = await backend.write(
        [StepSleeping(token, run_id, "nap", wake, now()), SuspendRun(token, run_id, wake)]
    )
    assert result.rejected == set()

    run = await get(backend, run_id)
    assert (run.status, run.available_at, run.finished_at) == (RunStatus.SLEEPING, wake, None)
    assert await backend.heartbeat("w1", [token], LONG) == {token}
    assert await backend.claim_runs("w1", [WF], 1, LONG) == []

    again = await eventually(lambda: backend.claim_runs("w1", [WF], 1, LONG))
    assert now() >= wake
    assert again[0].run.claims == 2
    assert again[0].lease_token != token
    assert [(s.key, s.status, s.wake_at) for s in again[0].steps] == [
        ("nap", StepStatus.SLEEPING, wake)
    ]


async def test_release_run_is_claimable_at_once(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    claimed = await started(one)
    token, run_id = claimed.lease_token, claimed.run.id
    await one.write([completed(claimed, "a")])
    before = now()
    assert (await one.write([ReleaseRun(token, run_id)])).rejected == set()

    run = await get(one, run_id)
    assert run.status is RunStatus.PENDING
    assert run.available_at >= before - timedelta(seconds=1)
    assert (await one.write([completed(claimed, "b")])).rejected == {token}

    taken = await claim_one(two, worker="w2")
    assert taken.run.id == run_id
    assert [s.key for s in taken.steps] == ["a"]
    assert taken.run.attempt == 1


async def test_retry_run_erases_failed_steps_and_keeps_completed(backend: Backend) -> None:
    claimed = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    await backend.write(
        [
            completed(claimed, "good"),
            failed(claimed, "bad", attempts=3),
            StepStarted(token, run_id, "unfinished", 1, now()),
        ]
    )
    error = json.dumps({"type": "StepFailed", "message": "step 'bad' failed"})
    due = now() + timedelta(seconds=0.3)
    assert (await backend.write([RetryRun(token, run_id, due, error)])).rejected == set()

    run = await get(backend, run_id)
    assert (run.status, run.attempt, run.error, run.available_at) == (
        RunStatus.PENDING,
        2,
        error,
        due,
    )
    assert run.finished_at is None
    assert [s.key for s in await backend.list_steps(run_id)] == ["good", "unfinished"]
    assert (await backend.write([completed(claimed, "late")])).rejected == {token}

    again = await eventually(lambda: backend.claim_runs("w1", [WF], 1, LONG))
    assert again[0].run.id == run_id
    assert again[0].run.attempt == 2
    assert [s.key for s in again[0].steps] == ["good", "unfinished"]


# ---- cancel and deadlines ----------------------------------------------------------------------


async def test_cancel_run(backend: Backend) -> None:
    pending = await create(backend)
    canceled = await backend.cancel_run(pending.id)
    assert canceled is not None
    assert canceled.status is RunStatus.CANCELED
    assert canceled.finished_at is not None
    assert_utc(canceled.finished_at)
    assert await backend.claim_runs("w1", [WF], 1, LONG) == []

    # A finished run comes back unchanged.
    assert await backend.cancel_run(pending.id) == canceled
    done = await started(backend)
    await backend.write([FinishRun(done.lease_token, done.run.id, RunStatus.SUCCEEDED, "1")])
    finished = await get(backend, done.run.id)
    assert await backend.cancel_run(done.run.id) == finished

    assert await backend.cancel_run(str(uuid.uuid4())) is None


async def test_cancel_a_sleeping_run(backend: Backend) -> None:
    claimed = await started(backend)
    wake = now() + timedelta(seconds=0.2)
    await backend.write([SuspendRun(claimed.lease_token, claimed.run.id, wake)])
    canceled = await backend.cancel_run(claimed.run.id)
    assert canceled is not None
    assert canceled.status is RunStatus.CANCELED
    await passed(wake + timedelta(seconds=0.1))
    assert await backend.claim_runs("w1", [WF], 1, LONG) == []


async def test_expire_runs_fails_unfinished_runs_past_their_deadline(backend: Backend) -> None:
    soon = now() + timedelta(seconds=0.5)
    running = await create(backend, deadline_at=soon)
    holder = await claim_one(backend)
    assert holder.run.id == running.id
    sleeping = await create(backend, deadline_at=soon)
    sleeper = await claim_one(backend)
    await backend.write([SuspendRun(sleeper.lease_token, sleeping.id, now() + timedelta(hours=1))])
    pending = await create(backend, deadline_at=soon, available_at=now() + timedelta(hours=1))
    finished = await started(backend)
    await backend.write([FinishRun(finished.lease_token, finished.run.id, RunStatus.SUCCEEDED)])
    no_deadline = await create(backend, available_at=now() + timedelta(hours=1))
    later = await create(backend, deadline_at=now() + timedelta(hours=1))

    assert await backend.expire_runs() == 0
    await passed(soon)
    assert await backend.expire_runs() == 3
    assert await backend.expire_runs() == 0

    for run_id in (running.id, sleeping.id, pending.id):
        run = await get(backend, run_id)
        assert run.status is RunStatus.FAILED
        assert run.finished_at is not None
        assert run.error is not None
        document = json.loads(run.error)
        assert document["type"] == "DeadlineExceeded"
        assert document["message"]
    for run_id, status in (
        (finished.run.id, RunStatus.SUCCEEDED),
        (no_deadline.id, RunStatus.PENDING),
        (later.id, RunStatus.PENDING),
    ):
        assert (await get(backend, run_id)).status is status
    assert (await backend.write([completed(holder, "a")])).rejected == {holder.lease_token}


# ---- heartbeats and workers --------------------------------------------------------------------


async def test_heartbeat_extends_the_lease(backend_factory: BackendFactory) -> None:
    one, two = await backend_factory(), await backend_factory()
    kept = await started(one, lease=SHORT)
    dropped = await started(one, lease=SHORT)
    assert await one.heartbeat("w1", [kept.lease_token], LONG) == set()

    # Once the other lease has expired, only that run is up for grabs.
    taken = await reclaimed(two)
    assert taken.run.id == dropped.run.id
    assert await two.claim_runs("w2", [WF], 10, LONG) == []
    assert (await one.write([completed(kept, "a")])).rejected == set()


async def test_an_expired_lease_nobody_took_still_holds(backend_factory: BackendFactory) -> None:
    """Fencing is by token, not by clock: until another claim takes the run, the holder's
    writes apply and its heartbeat renews the lease."""
    one, two = await backend_factory(), await backend_factory()
    begun = now()
    claimed = await started(one, lease=SHORT)
    await passed(begun + timedelta(seconds=SHORT + 0.1))

    assert (await one.write([completed(claimed, "a")])).rejected == set()
    assert await one.heartbeat("w1", [claimed.lease_token], LONG) == set()
    assert await two.claim_runs("w2", [WF], 1, LONG) == []
    assert [s.key for s in await two.list_steps(claimed.run.id)] == ["a"]


async def test_heartbeat_reports_the_tokens_no_longer_held(
    backend_factory: BackendFactory,
) -> None:
    one, two = await backend_factory(), await backend_factory()
    held = await started(one)
    canceled = await started(one)
    await one.cancel_run(canceled.run.id)
    stolen = await started(one, lease=SHORT)
    await reclaimed(two)
    unknown = str(uuid.uuid4())

    lost = await one.heartbeat(
        "w1", [held.lease_token, canceled.lease_token, stolen.lease_token, unknown], LONG
    )
    assert lost == {canceled.lease_token, stolen.lease_token, unknown}
    assert await one.heartbeat("w1", [], LONG) == set()


async def test_serving_workers(backend: Backend) -> None:
    assert await backend.serving_workers("a", 60) == 0
    await backend.register_worker(WorkerInfo("w1", "host-1", ["a", "b"], 4))
    await backend.register_worker(WorkerInfo("w2", "host-2", ["b"], 2))
    assert await backend.serving_workers("a", 60) == 1
    assert await backend.serving_workers("b", 60) == 2
    assert await backend.serving_workers("c", 60) == 0

    await backend.unregister_worker("w1")
    assert await backend.serving_workers("a", 60) == 0
    assert await backend.serving_workers("b", 60) == 1
    await backend.unregister_worker("never-registered")

    # Registering again under the same id replaces what the worker serves.
    await backend.register_worker(WorkerInfo("w2", "host-2", ["c"], 2))
    assert await backend.serving_workers("b", 60) == 0
    assert await backend.serving_workers("c", 60) == 1


async def test_serving_workers_counts_only_recent_heartbeats(backend: Backend) -> None:
    await backend.register_worker(WorkerInfo("w1", "host-1", ["a"], 1))
    assert await backend.serving_workers("a", 0.3) == 1
    await eventually(lambda: _none_serving(backend, "a", 0.3))
    assert await backend.serving_workers("a", 60) == 1
    assert await backend.heartbeat("w1", [], LONG) == set()
    assert await backend.serving_workers("a", 0.3) == 1


async def _none_serving(backend: Backend, workflow: str, within: float) -> bool:
    return await backend.serving_workers(workflow, within) == 0


# ---- waking up ---------------------------------------------------------------------------------


async def test_wait_for_work_returns_within_its_timeout(backend: Backend) -> None:
    for timeout in (0.0, 0.3):
        begun = time.monotonic()
        await backend.wait_for_work(timeout)
        assert time.monotonic() - begun < timeout + 1.0


@pytest.mark.parametrize("event", ["created", "released"])
async def test_wait_for_work_wakes_on_new_work(backend_factory: BackendFactory, event: str) -> None:
    waiter, starter = await backend_factory(), await backend_factory()
    held = await started(starter) if event == "released" else None
    await waiter.wait_for_work(0.0)  # settle any subscription
    begun = time.monotonic()
    waiting = asyncio.create_task(waiter.wait_for_work(20.0))
    await asyncio.sleep(0)
    if held is None:
        await create(starter)
    else:
        await starter.write([ReleaseRun(held.lease_token, held.run.id)])
    await asyncio.wait_for(waiting, 10.0)
    assert time.monotonic() - begun < 10.0
    assert await waiter.claim_runs("w1", [WF], 1, LONG)


async def test_watch_next_returns_within_its_timeout(backend: Backend) -> None:
    async with backend.watch() as changes:
        for timeout in (0.0, 0.3):
            begun = time.monotonic()
            seen = await changes.next(timeout)
            assert time.monotonic() - begun < timeout + 1.0
            assert seen is None or isinstance(seen, set)


async def test_watch_reports_a_changed_run(backend_factory: BackendFactory) -> None:
    watcher, writer = await backend_factory(), await backend_factory()
    async with watcher.watch() as changes:
        claimed = await started(writer)
        await writer.write([completed(claimed, "a")])

        async def saw_it() -> bool:
            seen = await changes.next(0.5)
            return seen is None or claimed.run.id in seen

        assert await eventually(saw_it)


async def test_sqlite_watch_asks_to_reread_everything(tmp_path: Path) -> None:
    backend = SqliteBackend(f"sqlite:///{tmp_path / 'watch.db'}", poll_interval=0.05)
    await backend.open()
    try:
        async with backend.watch() as changes:
            begun = time.monotonic()
            assert await changes.next(5.0) is None
            assert time.monotonic() - begun < 1.0
    finally:
        await backend.close()
