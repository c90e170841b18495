"""One run's write that the database refuses never harms the other runs whose writes share its
group-commit batch: theirs are written, and the culprit's run is failed (so it cannot come back
and fail another batch) with an error that names what could not be stored.

These drive the journal directly over a real backend, with writes the engine's own checks
would have stopped (``codec`` and ``Journal._check``), to stand for whatever a database may
refuse that nobody foresaw. ``test_unstorable_values.py`` covers the checks themselves, with
real worker processes.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from stepwise.backends import open_backend
from stepwise.backends.base import (
    Backend,
    ClaimedRun,
    NewRun,
    RunStatus,
    StepFinished,
    StepStarted,
    StepStatus,
)
from stepwise.core import codec
from stepwise.core import journal as journal_module
from stepwise.core.journal import MAX_BATCH_BYTES, Journal, LeaseLost
from stepwise.errors import StepNameError

INNOCENT_RUNS = 30
LEASE = 300.0
LONE_SURROGATE = '"\ud800"'
"""JSON text no backend stores: Postgres rejects the escape, SQLite's driver the character."""
OVER_JSONB = 300 * 1024 * 1024
"""A result Postgres cannot hold: one jsonb value is limited to 255 MB."""


async def _claim(backend: Backend, count: int) -> list[ClaimedRun]:
    for _ in range(count):
        await backend.create_run(NewRun(str(uuid.uuid4()), "isolation", None, "{}"))
    claimed: list[ClaimedRun] = []
    while len(claimed) < count:
        claimed += await backend.claim_runs("w", ["isolation"], count - len(claimed), LEASE)
    return claimed


def _completed(claim: ClaimedRun, key: str, output: str) -> StepFinished:
    now = datetime.now(UTC)
    return StepFinished(
        claim.lease_token, claim.run.id, key, StepStatus.COMPLETED, output, None, 1, now, now
    )


async def _commit_together(journal: Journal, ops: list[StepFinished]) -> list[BaseException | None]:
    """Commit ``ops`` from concurrent tasks queued in one loop iteration: one batch."""
    outcomes = await asyncio.gather(*(journal.commit(op) for op in ops), return_exceptions=True)
    return [outcome if isinstance(outcome, BaseException) else None for outcome in outcomes]


async def _assert_culprit_failed_alone(
    backend: Backend, innocents: list[ClaimedRun], culprit: ClaimedRun, step: str
) -> None:
    for claim in innocents:
        [stored] = await backend.list_steps(claim.run.id)
        assert (stored.key, stored.status) == ("done", StepStatus.COMPLETED)
        run = await backend.get_run(claim.run.id)
        assert run is not None
        assert run.status is RunStatus.RUNNING  # still held: never given up
    failed = await backend.get_run(culprit.run.id)
    assert failed is not None
    assert failed.status is RunStatus.FAILED
    error = codec.loads(failed.error or "{}")
    assert error["type"] == "WriteRefused"
    assert f"the result of step {step!r}" in error["message"]
    # Failed, not given back: no claim brings it round to fail a batch again.
    assert await backend.claim_runs("w", ["isolation"], 10, LEASE) == []


async def test_the_writes_of_many_runs_go_out_in_one_batch(backend: Backend) -> None:
    """The control: without a culprit, one batch (on Postgres, one round trip) for all."""
    claims = await _claim(backend, INNOCENT_RUNS)
    journal = Journal(backend)
    ops = [_completed(claim, "done", '{"ok":true}') for claim in claims]

    assert await _commit_together(journal, ops) == [None] * INNOCENT_RUNS
    assert (journal.batches, journal.ops_written) == (1, INNOCENT_RUNS)


@pytest.mark.parametrize("position", [0, INNOCENT_RUNS // 2, INNOCENT_RUNS])
async def test_a_refused_write_fails_only_its_own_run(backend: Backend, position: int) -> None:
    claims = await _claim(backend, INNOCENT_RUNS + 1)
    culprit = claims.pop(position)
    journal = Journal(backend)
    ops = [_completed(claim, "done", '{"ok":true}') for claim in claims]
    ops.insert(position, _completed(culprit, "poison", LONE_SURROGATE))

    outcomes = await _commit_together(journal, ops)

    culprit_outcome = outcomes.pop(position)
    assert isinstance(culprit_outcome, LeaseLost)
    assert outcomes == [None] * INNOCENT_RUNS
    await _assert_culprit_failed_alone(backend, claims, culprit, "poison")


async def test_the_culprits_earlier_writes_are_kept(backend: Backend) -> None:
    [neighbour, culprit] = await _claim(backend, 2)
    journal = Journal(backend)
    ops = [
        _completed(culprit, "fine", '"kept"'),
        _completed(neighbour, "done", '{"ok":true}'),
        _completed(culprit, "poison", LONE_SURROGATE),
    ]

    outcomes = await _commit_together(journal, ops)

    assert [type(outcome) for outcome in outcomes] == [LeaseLost, type(None), LeaseLost]
    stored = {s.key: s for s in await backend.list_steps(culprit.run.id)}
    assert list(stored) == ["fine"]
    assert stored["fine"].output == '"kept"'
    await _assert_culprit_failed_alone(backend, [neighbour], culprit, "poison")


async def test_a_result_over_the_postgres_jsonb_limit_fails_only_its_own_run(
    postgres_url: str,
) -> None:
    opened = open_backend(postgres_url)
    await opened.open()
    try:
        await _over_the_jsonb_limit(opened)
    finally:
        await opened.close()


async def _over_the_jsonb_limit(backend: Backend) -> None:
    claims = await _claim(backend, INNOCENT_RUNS + 1)
    culprit = claims.pop(INNOCENT_RUNS // 2)
    journal = Journal(backend, max_payload_bytes=2 * OVER_JSONB)
    ops = [_completed(claim, "done", '{"ok":true}') for claim in claims]
    huge = _completed(culprit, "huge", codec.dumps("x" * OVER_JSONB))
    ops.insert(INNOCENT_RUNS // 2, huge)
    assert OVER_JSONB > MAX_BATCH_BYTES  # so it travels alone: its neighbours never wait on it

    outcomes = await _commit_together(journal, ops)
    del ops, huge

    assert isinstance(outcomes.pop(INNOCENT_RUNS // 2), LeaseLost)
    assert outcomes == [None] * INNOCENT_RUNS
    await _assert_culprit_failed_alone(backend, claims, culprit, "huge")


async def test_a_batch_never_carries_more_than_its_byte_limit(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "MAX_BATCH_BYTES", 30_000)
    claims = await _claim(backend, 6)
    journal = Journal(backend)
    chunk = codec.dumps("x" * 10_000)
    ops = [_completed(claim, "big", chunk) for claim in claims]

    assert await _commit_together(journal, ops) == [None] * len(ops)
    assert journal.batches == 3  # two results per batch, never the whole 2 x limit at once
    for claim in claims:
        [stored] = await backend.list_steps(claim.run.id)
        assert stored.status is StepStatus.COMPLETED


@pytest.mark.parametrize(
    ("name", "problem"),
    [("bad\x00name", "a NUL character"), ("bad\ud800name", "a lone surrogate")],
)
async def test_a_step_name_no_backend_can_store_is_refused_before_it_joins_a_batch(
    backend: Backend, name: str, problem: str
) -> None:
    [claim] = await _claim(backend, 1)
    journal = Journal(backend)
    start = StepStarted(claim.lease_token, claim.run.id, name, 1, datetime.now(UTC))
    with pytest.raises(StepNameError, match=problem):
        journal.submit(start)
    with pytest.raises(StepNameError, match=problem):
        await journal.commit(_completed(claim, name, "1"))
    await journal.drain()
    assert journal.batches == 0
    assert await backend.list_steps(claim.run.id) == []
