"""Retry racing itself, a prune and a stale holder, a few hundred times per backend, each side
on its own backend instance (as separate processes would be): a run is retried at most once per
failure, a retried run is never pruned under it, and a holder's late writes never land."""

from __future__ import annotations

import asyncio

from stepwise.backends.base import FinishRun, RunStatus, StepStatus
from tests.backends.conftest import BackendFactory
from tests.backends.test_conformance import LONG, started
from tests.backends.test_rerun import failed_run, finished

ROUNDS = 200


async def test_two_retries_at_once_resume_the_run_once(backend_factory: BackendFactory) -> None:
    one, other = await backend_factory(), await backend_factory()
    for _ in range(ROUNDS):
        run_id = (await failed_run(one)).run.id
        outcomes = await asyncio.gather(
            one.resume_run(run_id, None), other.resume_run(run_id, None)
        )
        assert sorted(changed for _, changed in filter(None, outcomes)) == [False, True]
        assert [a.attempt for a in await one.list_attempts(run_id)] == [1]
        run = await one.get_run(run_id)
        assert run is not None
        assert (run.status, run.attempt) == (RunStatus.PENDING, 2)
        [claimed] = await one.claim_runs("w", ["wf"], 1, LONG)  # out of the next round's way
        await one.write([FinishRun(claimed.lease_token, run_id, RunStatus.SUCCEEDED)])


async def test_a_retry_racing_a_prune_either_resumes_or_finds_nothing(
    backend_factory: BackendFactory,
) -> None:
    one, other = await backend_factory(), await backend_factory()
    resumed = pruned = 0
    for _ in range(ROUNDS):
        run_id = (await failed_run(one)).run.id
        retry, deleted = await asyncio.gather(
            one.resume_run(run_id, None), other.prune_runs(0.0, 10)
        )
        run = await one.get_run(run_id)
        if retry is None:  # the prune came first: everything of the run is gone
            assert (run, deleted) == (None, 1)
            assert await one.list_steps(run_id) == []
            assert await one.list_attempts(run_id) == []
            pruned += 1
        else:  # the retry came first: the run is unfinished, so the prune left it
            assert retry[1]
            assert run is not None
            assert run.status is RunStatus.PENDING
            assert deleted == 0
            assert [s.key for s in await one.list_steps(run_id)] == ["a"]
            [claimed] = await one.claim_runs("w", ["wf"], 1, LONG)
            await one.write([FinishRun(claimed.lease_token, run_id, RunStatus.SUCCEEDED)])
            resumed += 1
        await one.prune_runs(0.0, 10)
    assert resumed + pruned == ROUNDS


async def test_a_canceled_holder_never_writes_into_the_retried_run(
    backend_factory: BackendFactory,
) -> None:
    """Cancel, then retry while the holder sends its late step write: the write is refused
    whichever comes first, and the retried run holds only what was completed before."""
    holder, user = await backend_factory(), await backend_factory()
    for _ in range(ROUNDS):
        claimed = await started(holder, lease=LONG)
        run_id, token = claimed.run.id, claimed.lease_token
        await holder.write([finished(claimed, "a", StepStatus.COMPLETED)])
        await user.cancel_run(run_id)
        late, retry = await asyncio.gather(
            holder.write([finished(claimed, "b", StepStatus.COMPLETED)]),
            user.resume_run(run_id, None),
        )
        assert late.rejected == {token}
        assert retry is not None
        assert retry[1]
        assert [(s.key, s.status) for s in await user.list_steps(run_id)] == [
            ("a", StepStatus.COMPLETED)
        ]
        assert retry[0].status is RunStatus.PENDING
        await user.cancel_run(run_id)  # out of the next round's way
