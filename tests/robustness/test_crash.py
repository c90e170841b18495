"""The seed's crash scenario, with real processes: SIGKILL while three gathered steps run.

A worker process runs ``step-a``, ``step-b`` and ``step-c`` in parallel; a and b return at
once, c waits for a gate file. Once a and b are stored and c is running, the process is
SIGKILLed. A second worker process takes the run over when the (short) lease expires and
finishes it. The ledger, written outside the workers, proves that a and b ran exactly once
(the second worker returned their stored results) and c twice (once per worker).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus, StepStatus
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("flows.py")


async def test_sigkill_during_gather_resumes_on_another_worker(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    async with Client.connect(backend_url) as client:
        first = procs.worker(FLOWS, backend_url, lease=1, name="worker-1")
        run = await client.start("robust-parallel", {"ledger": str(ledger), "gate": str(gate)})

        async def a_and_b_stored_c_running() -> bool:
            done = {s.key for s in await client.steps(run.id) if s.status is StepStatus.COMPLETED}
            running = any(e.key == "step-c" for e in read_ledger(ledger))
            return done == {"step-a", "step-b"} and running

        await async_wait_until(
            a_and_b_stored_c_running,
            60,
            lambda: f"step-a and step-b are stored and step-c runs\n{procs.tails()}",
        )
        first.kill()
        gate.touch()
        second = procs.worker(FLOWS, backend_url, lease=1, name="worker-2")
        finished = await client.wait_finished(run.id, timeout=60)

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    assert finished.claims == 2
    entries = read_ledger(ledger)
    assert Counter(e.key for e in entries if e.event == "start") == {
        "step-a": 1,
        "step-b": 1,
        "step-c": 2,
    }
    c_runs = [e.pid for e in entries if e.key == "step-c" and e.event == "start"]
    assert c_runs == [first.pid, second.pid]
    # The workflow's result holds a's and b's results from the first worker (replayed from
    # storage) and c's from the second.
    producers = [int(output["execution"].split("-")[0]) for output in finished.output]
    assert producers == [first.pid, first.pid, second.pid]
    assert_no_errors_logged(procs)
