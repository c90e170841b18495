"""Versions side by side, delayed start and paging, in the claim and list queries of both
backends: a run pinned to a version goes only to a worker that serves it, an unpinned one is
pinned by its claim, a delayed run is never claimed early, and pages are keysets that runs
inserted meanwhile never shift."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from stepwise.backends.base import (
    WORKER_LIVENESS_SECONDS,
    Backend,
    NewRun,
    RunFilter,
    RunPosition,
    RunRecord,
    RunStatus,
    StepFinished,
    StepStatus,
    WorkerInfo,
)

WF = "wf"
LONG = 30.0


async def create(
    backend: Backend,
    *,
    workflow: str = WF,
    version: str | None = None,
    available_at: datetime | None = None,
) -> RunRecord:
    new = NewRun(str(uuid.uuid4()), workflow, version, json.dumps({}), available_at=available_at)
    record, created = await backend.create_run(new)
    assert created
    return record


async def register(
    backend: Backend,
    worker_id: str,
    versions: dict[str, list[str]],
    workflows: tuple[str, ...] = (WF,),
) -> None:
    await backend.register_worker(WorkerInfo(worker_id, "host", workflows, 10, versions=versions))


async def claimed_ids(
    backend: Backend, worker_id: str, workflows: tuple[str, ...] = (WF,)
) -> set[str]:
    return {c.run.id for c in await backend.claim_runs(worker_id, list(workflows), 100, LONG)}


async def test_a_run_pinned_to_a_version_is_claimed_only_by_a_worker_that_serves_it(
    backend: Backend,
) -> None:
    await register(backend, "serves-1", {WF: ["1"]})
    await register(backend, "serves-2", {WF: ["2"]})
    await register(backend, "serves-3", {WF: ["3"]})
    one, two = await create(backend, version="1"), await create(backend, version="2")

    assert await claimed_ids(backend, "serves-3") == set()
    assert await claimed_ids(backend, "serves-2") == {two.id}
    assert await claimed_ids(backend, "serves-1") == {one.id}


async def test_an_expired_lease_of_a_pinned_run_is_taken_over_only_by_a_worker_serving_it(
    backend: Backend,
) -> None:
    await register(backend, "serves-1", {WF: ["1"]})
    await register(backend, "serves-2", {WF: ["2"]})
    await register(backend, "also-1", {WF: ["2", "1"]})
    run = await create(backend, version="1")
    # A lease of zero seconds has expired as soon as it is granted: a takeover is due at once.
    (first,) = await backend.claim_runs("serves-1", [WF], 1, 0.0)
    assert first.run.id == run.id

    assert await claimed_ids(backend, "serves-2") == set()
    assert await claimed_ids(backend, "also-1") == {run.id}


async def test_an_unpinned_run_is_pinned_by_its_claim_to_the_claimers_newest_version(
    backend: Backend,
) -> None:
    await register(backend, "serves-both", {WF: ["1.10", "1.9"]})
    run = await create(backend)
    assert run.version is None

    (claim,) = await backend.claim_runs("serves-both", [WF], 1, LONG)
    assert claim.run.version == "1.10"
    stored = await backend.get_run(run.id)
    assert stored is not None
    assert stored.version == "1.10"


async def test_a_worker_serving_a_workflow_unversioned_takes_only_unpinned_runs(
    backend: Backend,
) -> None:
    await register(backend, "unversioned", {})
    pinned, unpinned = await create(backend, version="1"), await create(backend)

    claims = await backend.claim_runs("unversioned", [WF], 10, LONG)
    assert [(c.run.id, c.run.version) for c in claims] == [(unpinned.id, None)]
    stored = await backend.get_run(pinned.id)
    assert stored is not None
    assert stored.status is RunStatus.PENDING


async def test_live_workers_say_which_versions_they_serve(backend: Backend) -> None:
    assert await backend.served_versions(WF, WORKER_LIVENESS_SECONDS) == []
    await register(backend, "a", {WF: ["2", "1"], "other": ["9"]}, (WF, "other"))
    await register(backend, "b", {WF: ["1"]})
    await register(backend, "c", {})

    assert sorted(await backend.served_versions(WF, WORKER_LIVENESS_SECONDS)) == ["1", "2"]
    assert await backend.serving_workers(WF, WORKER_LIVENESS_SECONDS) == 3
    assert await backend.serving_workers(WF, WORKER_LIVENESS_SECONDS, "1") == 2
    assert await backend.serving_workers(WF, WORKER_LIVENESS_SECONDS, "2") == 1
    assert await backend.serving_workers(WF, WORKER_LIVENESS_SECONDS, "9") == 0

    await backend.unregister_worker("a")
    assert await backend.served_versions(WF, WORKER_LIVENESS_SECONDS) == ["1"]


async def test_a_delayed_run_is_not_claimed_before_its_time(backend: Backend) -> None:
    await register(backend, "w", {})
    later = await create(backend, available_at=datetime.now(UTC) + timedelta(hours=1))
    due = await create(backend, available_at=datetime.now(UTC) - timedelta(seconds=1))

    assert await claimed_ids(backend, "w") == {due.id}
    assert await claimed_ids(backend, "w") == set()
    stored = await backend.get_run(later.id)
    assert stored is not None
    assert (stored.status, stored.claims) == (RunStatus.PENDING, 0)
    assert stored.available_at == later.available_at


async def test_pages_of_runs_follow_the_keyset_whatever_is_inserted_meanwhile(
    backend: Backend,
) -> None:
    first = [await create(backend) for _ in range(7)]
    newest_first = sorted(first, key=lambda r: (r.created_at, r.id), reverse=True)

    seen: list[str] = []
    after: RunPosition | None = None
    while True:
        page = await backend.list_runs(RunFilter(WF, limit=3, after=after))
        seen += [run.id for run in page]
        if len(page) < 3:
            break
        after = RunPosition(page[-1].created_at, page[-1].id)
        await create(backend)  # newer than every page: it never shows up behind the cursor
    assert seen == [run.id for run in newest_first]


async def test_count_runs_counts_what_every_page_would_give(backend: Backend) -> None:
    await register(backend, "w", {})
    for _ in range(5):
        await create(backend)
    await create(backend, workflow="other")
    await claimed_ids(backend, "w")

    assert await backend.count_runs(RunFilter()) == 6
    assert await backend.count_runs(RunFilter(WF)) == 5
    assert await backend.count_runs(RunFilter(WF, [RunStatus.RUNNING])) == 5
    assert await backend.count_runs(RunFilter(None, [RunStatus.PENDING])) == 1
    assert await backend.count_runs(RunFilter(WF, [RunStatus.PENDING])) == 0


async def test_steps_are_paged_in_first_started_order(backend: Backend) -> None:
    await create(backend)
    (claim,) = await backend.claim_runs("w", [WF], 1, LONG)
    at = datetime.now(UTC)
    keys = [f"step-{n}" for n in range(5)]
    ops = [
        StepFinished(
            claim.lease_token, claim.run.id, key, StepStatus.COMPLETED, "1", None, 1, at, at
        )
        for key in keys
    ]
    assert not (await backend.write(ops)).rejected

    everything = await backend.list_steps(claim.run.id)
    assert [s.key for s in everything] == keys
    first = await backend.list_steps(claim.run.id, limit=2)
    rest = await backend.list_steps(claim.run.id, after_seq=first[-1].seq)
    assert [s.key for s in first] == keys[:2]
    assert [s.key for s in rest] == keys[2:]
