"""A concurrency limit holds across worker processes that are SIGKILLed under load.

Three worker processes (each with room for 5 runs) serve 30 runs of ``robust-limited``
(``concurrency=2``, three 50 ms steps each). While they run, a worker that holds a run is
SIGKILLed and a fresh one started in its place, ``KILLS`` times. Two independent checks:

* the database: a sampler counts the workflow's RUNNING runs, again and again, until every run
  finished; no sample may exceed 2;
* the user code: from the ledger, every step execution spans from its start to its return (or
  to the SIGKILL of its process); at no moment may executions of more than 2 runs overlap. A
  dead holder's run keeps its slot until its lease expired and it was taken over, so even the
  step a dead worker was running counts, up to its death.

And every run completes exactly once: all 30 succeed, each stored step names the one execution
whose result was kept, and no completed step ran again (``checks``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.workers import Procs
from stepwise import Client, Run, RunStatus
from tests.robustness.chaos import WorkerPool
from tests.robustness.checks import (
    assert_all_succeeded,
    assert_completed_steps_never_rerun,
    assert_no_errors_logged,
    assert_outputs_are_what_was_stored,
)
from tests.robustness.flows import read_ledger
from tests.robustness.limited_flows import LIMIT

FLOWS = Path(__file__).with_name("limited_flows.py")
RUNS = 30
STEPS = 3
STEP_SECONDS = 0.05
WORKERS = 3
KILLS = 4
LEASE = 2.0


@dataclass
class Sampler:
    """Counts the workflow's RUNNING runs in the database until told to stop."""

    client: Client
    samples: int = 0
    most: int = 0
    seen: list[int] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            running = await self.client.list(
                workflow="robust-limited", status=RunStatus.RUNNING, limit=100
            )
            self.samples += 1
            self.most = max(self.most, len(running))
            if len(running) > LIMIT:
                self.seen.append(len(running))
            await asyncio.sleep(0)  # read again at once, letting the other tasks move


def most_runs_in_user_code(ledger: Path, killed_at: dict[int, float]) -> int:
    """The largest number of runs whose step executions overlapped in time (an execution of a
    killed process lasts until its kill)."""
    entries = read_ledger(ledger)
    ends = {e.execution: e.at for e in entries if e.event == "done"}
    events: list[tuple[float, int, str]] = []
    for e in (e for e in entries if e.event == "start"):
        end = ends.get(e.execution, killed_at.get(e.pid))
        assert end is not None, f"execution {e.execution} never returned, yet was not killed"
        events += [(e.at, 1, e.run_id), (end, -1, e.run_id)]
    active: dict[str, int] = {}
    most = 0
    for _, delta, run_id in sorted(events, key=lambda ev: (ev[0], ev[1])):
        active[run_id] = active.get(run_id, 0) + delta
        if not active[run_id]:
            del active[run_id]
        most = max(most, len(active))
    return most


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_the_limit_holds_under_sigkill(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    async with Client.connect(backend_url) as client, Client.connect(backend_url) as reader:
        pool = WorkerPool(procs, FLOWS, backend_url, client, ledger, lease=LEASE, concurrency=5)
        pool.start(WORKERS)
        plan = {"ledger": str(ledger), "steps": STEPS, "seconds": STEP_SECONDS}
        runs: list[Run] = [await client.start("robust-limited", plan) for _ in range(RUNS)]
        sampler, stop = Sampler(reader), asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop))
        try:
            for kill in range(KILLS):
                victim = await pool.kill_one_holding_a_run()
                assert victim is not None, f"kill {kill + 1} of {KILLS}: every run finished"
            finished = [await client.wait_finished(run.id, timeout=300) for run in runs]
        finally:
            stop.set()
            await sampling

        assert_all_succeeded(finished, procs)
        assert_no_errors_logged(procs)
        keys = [f"step-{i}" for i in range(STEPS)]
        replays = await assert_completed_steps_never_rerun(
            client, [run.id for run in runs], ledger, keys
        )
        await assert_outputs_are_what_was_stored(client, finished)

    in_user_code = most_runs_in_user_code(ledger, pool.killed)
    claims = sum(run.claims for run in finished)
    summary = (
        f"limit {LIMIT} on {backend_url.split(':')[0]}: {KILLS} workers SIGKILLed; "
        f"{sampler.samples} database samples, at most {sampler.most} running; at most "
        f"{in_user_code} runs in user code at once; {claims} claims for {RUNS} runs; "
        f"{replays.reruns} step executions re-run after a crash"
    )
    print(summary)
    assert not sampler.seen, f"more than {LIMIT} running: {sampler.seen[:10]}; {summary}"
    assert in_user_code <= LIMIT, summary
    # The limit was reached (the sampler saw it), and every kill interrupted a run.
    assert sampler.most == LIMIT, summary
    assert claims >= RUNS + KILLS, summary
