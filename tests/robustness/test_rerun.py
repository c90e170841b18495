"""Retry and fork with real worker processes, on both backends: what ran is counted in a ledger
written outside the workers (``rerun_flows``), so "ran once in total" is checked, not assumed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunNotRetryable, RunStatus, StepNotFound, StepStatus
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("rerun_flows.py")


def starts(ledger: Path, run_id: str | None = None) -> Counter[str]:
    return Counter(
        e.key
        for e in read_ledger(ledger)
        if e.event == "start" and (run_id is None or e.run_id == run_id)
    )


async def test_a_run_failed_by_a_downstream_resumes_where_it_stopped(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, down = tmp_path / "ledger", tmp_path / "down"
    down.touch()
    procs.worker(FLOWS, backend_url, lease=1)
    async with Client.connect(backend_url) as client:
        run = await client.start("rerun-order", {"ledger": str(ledger), "down": str(down)})
        failed = await client.wait_finished(run.id, timeout=60)
        assert failed.status is RunStatus.FAILED, procs.tails()
        assert starts(ledger) == {"prepare": 1, "charge": 2}

        down.unlink()
        retried = await client.retry(run.id)
        assert (retried.status, retried.attempt, retried.error) == (RunStatus.PENDING, 2, None)
        done = await client.wait_finished(run.id, timeout=60)
        assert done.status is RunStatus.SUCCEEDED, procs.tails()
        assert done.output == ["prepare done", "charge done", "notify done"]
        assert done.attempt == 2
        # prepare ran once in total; charge's two failed attempts, then one more.
        assert starts(ledger) == {"prepare": 1, "charge": 3, "notify": 1}
        charge = {s.key: s for s in await client.steps(run.id)}["charge"]
        assert (charge.status, charge.attempts) == (StepStatus.COMPLETED, 1)
        [earlier] = await client.attempts(run.id)
        assert (earlier.attempt, earlier.status) == (1, RunStatus.FAILED)
        assert "downstream of charge is down" in str(earlier.error)

        with pytest.raises(RunNotRetryable, match="succeeded"):
            await client.retry(run.id)


async def test_a_canceled_run_resumes_and_its_old_holder_writes_nothing(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    """Canceled while its worker runs ``second``: the retried run waits out that worker's
    lease, is claimed again and runs ``second`` again; ``first`` never runs twice, and the
    stored ``second`` is the retried execution's, not the late one of the canceled holder."""
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    worker = procs.worker(FLOWS, backend_url, lease=1)
    async with Client.connect(backend_url) as client:
        run = await client.start("rerun-gated", {"ledger": str(ledger), "gate": str(gate)})
        await async_wait_until(
            lambda: _second_started(ledger, 1), 60, lambda: f"second runs\n{procs.tails()}"
        )
        canceled = await client.cancel(run.id)
        assert canceled.status is RunStatus.CANCELED
        await client.retry(run.id)
        await async_wait_until(
            lambda: _second_started(ledger, 2), 60, lambda: f"second runs again\n{procs.tails()}"
        )
        gate.touch()
        done = await client.wait_finished(run.id, timeout=60)
    assert done.status is RunStatus.SUCCEEDED, procs.tails()
    assert starts(ledger) == {"first": 1, "second": 2}
    second_runs = [
        e.execution for e in read_ledger(ledger) if e.key == "second" and e.event == "start"
    ]
    assert done.output[1] == second_runs[1]
    assert worker.alive


async def _second_started(ledger: Path, times: int) -> bool:
    return starts(ledger)["second"] >= times


async def test_a_fork_reuses_the_steps_before_the_named_one(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, down = tmp_path / "ledger", tmp_path / "down"
    procs.worker(FLOWS, backend_url, lease=1)
    async with Client.connect(backend_url) as client:
        run = await client.start("rerun-order", {"ledger": str(ledger), "down": str(down)})
        assert (await client.wait_finished(run.id, timeout=60)).status is RunStatus.SUCCEEDED
        fork = await client.fork(run.id, from_step="charge")
        assert (fork.forked_from, fork.input) == (run.id, run.input)
        done = await client.wait_finished(fork.id, timeout=60)
        assert done.status is RunStatus.SUCCEEDED, procs.tails()
        assert starts(ledger, run.id) == {"prepare": 1, "charge": 1, "notify": 1}
        assert starts(ledger, fork.id) == {"charge": 1, "notify": 1}
        assert done.output == ["prepare done", "charge done", "notify done"]
        with pytest.raises(StepNotFound, match=r"'chrage'.*'prepare', 'charge', 'notify'"):
            await client.fork(run.id, from_step="chrage")


async def test_a_retried_run_gets_a_fresh_workflow_retry_budget(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    """Two attempts by its policy, a retry, two more: the policy counts from the retry."""
    ledger, down = tmp_path / "ledger", tmp_path / "down"
    down.touch()
    procs.worker(FLOWS, backend_url, lease=1)
    async with Client.connect(backend_url) as client:
        run = await client.start("rerun-whole", {"ledger": str(ledger), "down": str(down)})
        assert (await client.wait_finished(run.id, timeout=60)).status is RunStatus.FAILED
        assert starts(ledger) == {"body": 2}
        await client.retry(run.id)
        failed = await client.wait_finished(run.id, timeout=60)
        assert (failed.status, failed.attempt, failed.first_attempt) == (RunStatus.FAILED, 4, 3)
        assert starts(ledger) == {"body": 4}
        assert [a.attempt for a in await client.attempts(run.id)] == [2]
