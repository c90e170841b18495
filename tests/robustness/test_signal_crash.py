"""A worker SIGKILLed between receiving a signal and its next step: nothing lost, nothing twice.

Worker 1 parks the run on ``wait_for_signal("go")``; the first signal wakes it, the wait step
stores the payload (consuming the signal) and the body then blocks before its next step, where
worker 1 is SIGKILLed. A second signal is sent while no worker lives. Worker 2 takes the run
over once the lease expires: its replay gets the first payload from the stored step (the
second signal stays buffered for the second wait), runs the next step once, and the second
wait receives the second signal. Every signal reaches exactly one wait, once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus, StepStatus
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("signal_flows.py")


async def test_sigkill_after_a_signal_is_received_loses_and_repeats_nothing(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    async with Client.connect(backend_url) as client:
        first = procs.worker(FLOWS, backend_url, lease=1, name="worker-1")
        run = await client.start("robust-signal", {"ledger": str(ledger), "gate": str(gate)})

        async def parked() -> bool:
            steps = {s.key: s.status for s in await client.steps(run.id)}
            status = (await client.get(run.id)).status
            return steps == {"go": StepStatus.SLEEPING} and status is RunStatus.SLEEPING

        await async_wait_until(parked, 60, lambda: f"the run parks on its wait\n{procs.tails()}")
        await client.signal(run.id, "go", {"n": 1})
        await async_wait_until(
            lambda: _received(ledger),
            60,
            lambda: f"worker 1 receives the signal\n{procs.tails()}",
        )
        first.kill()
        await client.signal(run.id, "go", {"n": 2})
        gate.touch()
        second = procs.worker(FLOWS, backend_url, lease=1, name="worker-2")
        finished = await client.wait_finished(run.id, timeout=60)
        signals = await client.signals(run.id)

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    assert finished.output["first"] == {"n": 1}
    assert finished.output["second"] == {"n": 2}
    assert [(s.payload, s.delivered_to) for s in signals] == [({"n": 1}, "go"), ({"n": 2}, "go:1")]
    entries = read_ledger(ledger)
    received = [(e.pid, e.key) for e in entries if e.event == "received"]
    assert received == [(first.pid, "go=1"), (second.pid, "go=1")]  # the replay's is stored
    assert Counter(e.key for e in entries if e.event == "start") == {"after": 1}
    assert finished.output["after"].startswith(f"{second.pid}-")
    assert_no_errors_logged(procs)


async def _received(ledger: Path) -> bool:
    return any(e.event == "received" for e in read_ledger(ledger))
