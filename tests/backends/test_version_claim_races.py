"""Claimers of different versions racing for one batch of runs, a couple of hundred times per
backend, each on its own backend instance (as separate worker processes would be): every run
is claimed exactly once, and always by a worker serving its version; an unpinned run is pinned
to the newest version of whoever took it."""

from __future__ import annotations

import asyncio
import json
import uuid

from stepwise.backends.base import Backend, ClaimedRun, FinishRun, NewRun, RunStatus, WorkerInfo
from tests.backends.conftest import BackendFactory

ROUNDS = 200
WF = "wf"
LONG = 30.0
SERVED = {"only-1": ["1"], "only-2": ["2"], "both": ["2", "1"]}
NEWEST = {worker: versions[0] for worker, versions in SERVED.items()}


async def test_claimers_of_different_versions_each_take_only_their_own(
    backend_factory: BackendFactory,
) -> None:
    claimers = {worker: await backend_factory() for worker in SERVED}
    for worker, versions in SERVED.items():
        info = WorkerInfo(worker, "host", [WF], 10, versions={WF: versions})
        await claimers[worker].register_worker(info)
    writer = claimers["both"]
    for _ in range(ROUNDS):
        batch = {}
        for version in ("1", "2", "1", "2", None, None):
            run_id = str(uuid.uuid4())
            await writer.create_run(NewRun(run_id, WF, version, json.dumps({})))
            batch[run_id] = version

        claims = await asyncio.gather(*(until_taken(b, w, batch) for w, b in claimers.items()))
        taken = {
            claim.run.id: (worker, claim)
            for worker, claimed in zip(SERVED, claims, strict=True)
            for claim in claimed
        }
        assert sum(len(claimed) for claimed in claims) == len(batch) == len(taken)
        for run_id, (worker, claim) in taken.items():
            pinned = batch[run_id]
            if pinned is None:
                assert claim.run.version == NEWEST[worker]
            else:
                assert pinned in SERVED[worker]
                assert claim.run.version == pinned
            done = FinishRun(claim.lease_token, run_id, RunStatus.SUCCEEDED)
            assert not (await writer.write([done])).rejected


async def until_taken(
    backend: Backend, worker: str, batch: dict[str, str | None]
) -> list[ClaimedRun]:
    """Claim (a run at a time, to interleave with the others) until no run of ``batch`` that
    this worker could serve is left pending."""
    claimed: list[ClaimedRun] = []
    while True:
        got = await backend.claim_runs(worker, [WF], 1, LONG)
        if not got:
            pending = [
                run_id
                for run_id, version in batch.items()
                if version is None or version in SERVED[worker]
            ]
            states = [await backend.get_run(run_id) for run_id in pending]
            if all(s is not None and s.status is not RunStatus.PENDING for s in states):
                return claimed
            continue
        claimed += got
