"""A real worker process and a sync step that hangs: the step's thread blocks, the event loop
does not. Each attempt times out and is retried, and then the step fails, while the heartbeat
keeps the lease (the run is claimed once) and the watchdog, which reports a blocked loop after
a lease, stays quiet. The hung threads hold no slot: the worker, serving one run at a time,
serves the next run, and on SIGTERM exits at once, leaving its hung threads behind.
"""

from __future__ import annotations

from pathlib import Path

from harness.workers import Procs
from stepwise import Client, RunStatus, StepStatus

APP = Path(__file__).with_name("timeout_flows.py")
LEASE = 1.0
TIMEOUT = 3 * LEASE
"""Each attempt hangs for three leases: long enough for the watchdog to report a blocked loop,
and for other workers to take the run over if the heartbeat had stopped."""


async def test_a_hung_sync_step_times_out_without_blocking_its_worker(
    backend_url: str, procs: Procs
) -> None:
    worker = procs.worker(APP, backend_url, lease=LEASE, concurrency=1, ready=True)
    async with Client.connect(backend_url) as client:
        run = await client.start("timeout-hung-sync-step", {"timeout": TIMEOUT})
        finished = await client.wait_finished(run.id, timeout=60)
        assert finished.status is RunStatus.SUCCEEDED, procs.tails()
        assert finished.output == {"error_type": "StepTimeout", "attempts": 2}
        assert (finished.claims, finished.recoveries) == (1, 0), procs.tails()
        (step,) = await client.steps(run.id)
        assert (step.status, step.attempts) == (StepStatus.FAILED, 2)
        assert step.error is not None
        assert step.error["type"] == "StepTimeout"

        after = await client.start("timeout-echo", {"served": "after the hung step"})
        served = await client.wait_finished(after.id, timeout=60)
        assert served.output == {"served": "after the hung step"}, procs.tails()

    worker.terminate()
    assert worker.wait(timeout=30) == 0, worker.tail()
    log = worker.log()
    assert "event loop blocked" not in log, worker.tail()
    assert "did not run for" not in log, worker.tail()
