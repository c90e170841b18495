"""Postgres restarted under load: the same worker processes reconnect and finish every run.

Two worker processes execute 200 runs of 10 steps; while many are in flight the server is
restarted, cleanly (``fast``: connections are cut, open transactions rolled back) and as a
crash (``immediate``: WAL recovery on start). Every run must still succeed, on the workers that
were running all along (none is restarted), and no step whose completion was stored may run
again: a commit whose acknowledgement was lost in the restart is retried, never redone.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from harness.postgres import PostgresServer
from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus
from tests.robustness.checks import (
    assert_all_succeeded,
    assert_completed_steps_never_rerun,
    assert_no_errors_logged,
)
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("flows.py")
RUNS = 200
STEPS = 10
STEP_SECONDS = (0.02, 0.1)


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_workers_reconnect_after_postgres_restart(
    pg_server: PostgresServer, postgres_url: str, procs: Procs, tmp_path: Path, mode: str
) -> None:
    ledger = tmp_path / "ledger"
    async with Client.connect(postgres_url) as client:
        runs = [
            await client.start(
                "robust-mixed",
                {"ledger": str(ledger), "steps": STEPS, "seed": i, "seconds": STEP_SECONDS},
            )
            for i in range(RUNS)
        ]
        workers = [
            procs.worker(FLOWS, postgres_url, lease=5, concurrency=20, name=f"worker-{i}")
            for i in range(2)
        ]

        async def well_under_way() -> bool:
            done = len(await client.list(status=RunStatus.SUCCEEDED, limit=RUNS))
            return done >= 10 and RUNS - done >= 100

        await async_wait_until(
            well_under_way, 120, lambda: f"10 runs are done and 100 are not\n{procs.tails()}"
        )
        in_flight = RUNS - len(await client.list(status=RunStatus.SUCCEEDED, limit=RUNS))
        await asyncio.to_thread(pg_server.restart, mode)
        restarted_at = time.time()

        finished = [await client.wait_finished(run.id, timeout=180) for run in runs]
        assert_all_succeeded(finished, procs)
        assert_no_errors_logged(procs)
        await assert_completed_steps_never_rerun(
            client, [run.id for run in runs], ledger, [f"step-{i}" for i in range(STEPS)]
        )

    assert in_flight >= 100
    assert all(worker.alive for worker in workers), procs.tails()
    after = {e.pid for e in read_ledger(ledger) if e.event == "start" and e.at > restarted_at}
    assert after <= {worker.pid for worker in workers}
    assert after, "no step ran after the restart"
