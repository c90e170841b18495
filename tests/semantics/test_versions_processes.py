"""Two worker processes, one per release of a workflow, on both backends: each claims only the
runs pinned to the version it serves, and a start without a version goes to the newest."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.workers import Procs
from stepwise import Client, RunStatus
from tests.semantics import version_flows

FLOWS = Path(version_flows.__file__)
NAME = "proc-versioned"
RUNS_PER_VERSION = 15
TIMEOUT = 60.0


async def test_two_workers_serving_v1_and_v2_each_claim_only_their_own(
    backend_url: str, procs: Procs
) -> None:
    variable = version_flows.VERSION_VARIABLE
    workers = {
        version: procs.worker(
            FLOWS, backend_url, name=f"worker-v{version}", env={variable: version}, ready=True
        )
        for version in ("1", "2")
    }
    async with Client.connect(backend_url) as client:
        pinned = [
            await client.start(NAME, version=version)
            for _ in range(RUNS_PER_VERSION)
            for version in ("1", "2")
        ]
        unpinned = [await client.start(NAME) for _ in range(RUNS_PER_VERSION)]
        finished = await asyncio.gather(
            *(client.wait_finished(run.id, timeout=TIMEOUT) for run in pinned + unpinned)
        )

    assert {run.status for run in finished} == {RunStatus.SUCCEEDED}, procs.tails()
    for run in finished:
        expected = run.version
        assert run.output == {
            "release": expected,
            "pinned": expected,
            "pid": workers[str(expected)].pid,
        }
        assert run.claims == 1
    assert [run.version for run in finished[len(pinned) :]] == ["2"] * RUNS_PER_VERSION
