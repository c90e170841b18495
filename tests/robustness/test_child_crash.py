"""A worker SIGKILLed while a parent waits on its child: nothing lost, nothing run twice.

Worker 1 runs the parent's first step, starts the child and parks the parent; the child runs
its step and blocks in its body. Worker 1 is SIGKILLed there. Worker 2 takes the child over
once its lease expires: the child's step returns its stored result, the child ends, and its
end makes the parent due; the parent's replay finds its first step and the child's output
stored, and runs its last step. One child run exists, and every step ran exactly once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus, StepStatus
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import read_ledger

FLOWS = Path(__file__).with_name("child_flows.py")


async def test_sigkill_while_a_parent_waits_on_its_child_runs_every_step_once(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    async with Client.connect(backend_url) as client:
        first = procs.worker(FLOWS, backend_url, lease=1, name="worker-1")
        run = await client.start("robust-parent", {"ledger": str(ledger), "gate": str(gate)})

        async def parked() -> bool:
            steps = {s.key: s.status for s in await client.steps(run.id)}
            parent_status = (await client.get(run.id)).status
            blocked = any(e.event == "blocked" for e in read_ledger(ledger))
            waiting = steps.get("child") is StepStatus.SLEEPING
            return blocked and waiting and parent_status is RunStatus.SLEEPING

        await async_wait_until(
            parked, 60, lambda: f"the parent parks, the child blocks\n{procs.tails()}"
        )
        first.kill()
        gate.touch()
        second = procs.worker(FLOWS, backend_url, lease=1, name="worker-2")
        finished = await client.wait_finished(run.id, timeout=60)
        (child_step,) = [s for s in await client.steps(run.id) if s.key == "child"]
        assert child_step.child_id is not None
        child = await client.get(child_step.child_id)

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    assert child.status is RunStatus.SUCCEEDED
    assert (child.parent_id, child.parent_step) == (run.id, "child")
    assert child.claims == 2  # taken over from the dead worker
    entries = read_ledger(ledger)
    assert Counter(e.key for e in entries if e.event == "start") == {
        "before": 1,
        "child-work": 1,
        "after": 1,
    }
    starts = {e.key: e for e in entries if e.event == "start"}
    assert starts["before"].pid == first.pid
    assert starts["child-work"].pid == first.pid
    assert starts["after"].pid == second.pid
    assert (finished.output or {})["child"] == {"work": starts["child-work"].execution}
    assert [e.pid for e in entries if e.event == "blocked"] == [first.pid, second.pid]
    assert_no_errors_logged(procs)
