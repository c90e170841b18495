"""User code that raises ``BaseException``s cannot take a worker process down, nor make its run
spin: ``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit`` and a ``CancelledError`` of the
code's own, raised by a sync step (in its thread), an async step or the workflow body, are
failures of that step (tried per its policy) or of that run.

One real worker process serves every combination; each run is claimed exactly once (a spin
would claim it again and again), each step tried exactly as often as its policy says, and the
same process then serves a good run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.workers import Procs
from stepwise import Client, RunStatus, StepStatus
from tests.robustness.checks import assert_no_errors_logged
from tests.robustness.flows import read_ledger
from tests.robustness.step_flows import RAISED, TWICE

APP = Path(__file__).with_name("step_flows.py")
WHERE = ("sync", "async", "body")


async def test_base_exceptions_fail_their_step_or_run_and_the_worker_serves_on(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    worker = procs.worker(APP, backend_url, lease=2, name="worker", ready=True)
    async with Client.connect(backend_url) as client:
        started = {
            (kind, where): await client.start(
                "robust-raises", {"ledger": str(ledger), "raise": kind, "where": where}
            )
            for kind in RAISED
            for where in WHERE
        }
        finished = {
            combo: await client.wait_finished(run.id, timeout=60) for combo, run in started.items()
        }
        echoed = await client.wait_finished(
            (await client.start("robust-echo", "after")).id, timeout=30
        )
        steps = {combo: await client.steps(run.id) for combo, run in started.items()}

    assert worker.alive, worker.tail()
    assert echoed.status is RunStatus.SUCCEEDED, worker.tail()
    assert echoed.output["pid"] == worker.pid
    tries = Counter((e.run_id, e.key) for e in read_ledger(ledger) if e.event == "start")
    problems = []
    for (kind, where), run in finished.items():
        error = run.error or {}
        expected = "StepFailed" if where != "body" else kind
        if run.status is not RunStatus.FAILED or error.get("type") != expected:
            problems.append(f"{kind} in {where}: {run.status.value} {error.get('type')}")
        if run.claims != 1:
            problems.append(f"{kind} in {where}: claimed {run.claims} times")
        want_tries = 1 if where == "body" else TWICE.max_attempts
        if tries[run.id, where] != want_tries:
            problems.append(f"{kind} in {where}: tried {tries[run.id, where]} times")
        if where != "body":
            (step,) = steps[kind, where]
            stored = (step.status, step.attempts, (step.error or {}).get("type"))
            if stored != (StepStatus.FAILED, TWICE.max_attempts, kind):
                problems.append(f"{kind} in {where}: step stored as {stored}")
    assert not problems, "\n".join(problems) + "\n" + worker.tail()
    assert_no_errors_logged(procs)
