"""Values a database cannot store fail their own step, in a real worker process, and never
harm the runs whose writes share their group-commit batch.

Thirty innocent runs and four bad ones run at once in one worker, so their writes go out in
the same batches: a step name holding NUL, one holding a lone surrogate, a result just over
the payload limit and a 300 MB result. Each bad run fails with an error naming its step and
what is wrong, at once and for good (claimed once, never retried); every innocent run
succeeds, and the ledger shows none of their completed steps ran again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus, StepStatus
from stepwise.core import codec
from tests.robustness import flows
from tests.robustness.checks import (
    assert_all_succeeded,
    assert_completed_steps_never_rerun,
    assert_no_errors_logged,
)
from tests.robustness.flows import read_ledger

FLOWS = Path(flows.__file__)
INNOCENT_RUNS = 30
HUGE = 300 * 1000 * 1000
BAD_INPUTS: dict[str, dict[str, Any]] = {
    "nul": {"name": "nul"},
    "surrogate": {"name": "surrogate"},
    "over": {"size": codec.DEFAULT_MAX_PAYLOAD_BYTES},  # + 2 quotes: just over the limit
    "huge": {"size": HUGE},
}


async def test_unstorable_values_fail_their_own_step_and_spare_their_neighbours(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    common = {"ledger": str(ledger), "gate": str(gate)}
    worker = procs.worker(FLOWS, backend_url, lease=10, concurrency=50, ready=True)
    async with Client.connect(backend_url) as client:
        bad = {
            label: await client.start("robust-unstorable", {**common, **extra})
            for label, extra in BAD_INPUTS.items()
        }
        innocent = [await client.start("robust-neighbour", common) for _ in range(INNOCENT_RUNS)]

        async def every_gated_step_waits() -> bool:
            started = Counter(e.key for e in read_ledger(ledger) if e.event == "start")
            refused = [await client.get(bad[label].id) for label in ("nul", "surrogate")]
            return started["second"] == INNOCENT_RUNS + 2 and all(r.finished for r in refused)

        await async_wait_until(
            every_gated_step_waits, 120, lambda: f"every gated step waits\n{procs.tails()}"
        )
        gate.touch()
        finished = {
            run.id: await client.wait_finished(run.id, timeout=120)
            for run in [*bad.values(), *innocent]
        }

        assert_all_succeeded([finished[run.id] for run in innocent], procs)
        await assert_completed_steps_never_rerun(
            client, [run.id for run in innocent], ledger, ["first", "second"]
        )
        assert {run.claims for run in finished.values()} == {1}, procs.tails()

        for label, problem in (("nul", "a NUL character"), ("surrogate", "a lone surrogate")):
            run = finished[bad[label].id]
            assert run.status is RunStatus.FAILED, run
            assert run.error is not None
            assert run.error["type"] == "StepNameError"
            assert f"must not contain {problem}" in run.error["message"]
            steps = await client.steps(run.id)
            assert [(s.key, s.status) for s in steps] == [("first", StepStatus.COMPLETED)]

        for label in ("over", "huge"):
            run = finished[bad[label].id]
            assert run.status is RunStatus.FAILED, run
            assert run.error is not None
            assert run.error["type"] == "StepResultError"
            assert "step 'second'" in run.error["message"]
            limit = f"over the limit of {codec.DEFAULT_MAX_PAYLOAD_BYTES} bytes"
            assert limit in run.error["message"]
            second = {s.key: s for s in await client.steps(run.id)}["second"]
            assert (second.status, second.attempts) == (StepStatus.FAILED, 1)  # not retried

        starts = Counter((e.run_id, e.key) for e in read_ledger(ledger) if e.event == "start")
        assert set(starts.values()) == {1}  # every step function ran exactly once

        echo = await client.start("robust-echo", "still serving")
        served = await client.wait_finished(echo.id, timeout=30)
        assert served.status is RunStatus.SUCCEEDED
        assert served.output == {"pid": worker.pid, "input": "still serving"}
    assert_no_errors_logged(procs)
