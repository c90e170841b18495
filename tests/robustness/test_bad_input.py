"""Bad input meets a real worker process: each case is a clear error naming the culprit, the
bad run ends in a consistent stored state, and the same process keeps serving good runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stepwise import Client, InvalidInput, Run, RunStatus, StepStatus
from tests.plugins.procs import Proc, Procs
from tests.robustness import flows
from tests.robustness.checks import assert_no_errors_logged

FLOWS = Path(flows.__file__)
DUPLICATES = FLOWS.with_name("duplicate_flows.py")


@dataclass
class Served:
    """A worker process serving ``flows`` and a client, on one database."""

    url: str
    worker: Proc
    client: Client
    procs: Procs

    async def finish(self, workflow: str, input: object = None) -> Run:  # noqa: A002
        run = await self.client.start(workflow, input)
        return await self.client.wait_finished(run.id, timeout=30)

    async def assert_still_serving(self) -> None:
        run = await self.finish("robust-echo", "still serving")
        assert run.status is RunStatus.SUCCEEDED, self.worker.tail()
        assert run.output == {"pid": self.worker.pid, "input": "still serving"}
        assert_no_errors_logged(self.procs)


@pytest.fixture
async def served(backend_url: str, procs: Procs) -> AsyncIterator[Served]:
    worker = procs.worker(FLOWS, backend_url, lease=5, args=["--poll-interval", "0.2"], ready=True)
    async with Client.connect(backend_url) as client:
        yield Served(backend_url, worker, client, procs)


async def test_step_result_that_is_not_json_fails_the_run_naming_the_step(
    served: Served,
) -> None:
    run = await served.finish("robust-not-json")
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepResultError"
    assert "step 'make-object'" in run.error["message"]
    assert "JSON" in run.error["message"]
    [step] = await served.client.steps(run.id)
    assert (step.key, step.status) == ("make-object", StepStatus.FAILED)
    await served.assert_still_serving()


async def test_step_name_that_is_not_a_string_fails_the_run_naming_it(served: Served) -> None:
    run = await served.finish("robust-bad-step-name")
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepNameError"
    assert "got int 42" in run.error["message"]
    assert await served.client.steps(run.id) == []
    await served.assert_still_serving()


async def test_input_failing_its_model_is_refused_or_fails_the_run(served: Served) -> None:
    bad = {"item": "tea", "quantity": "lots"}
    # A client that knows the definition refuses to store the run at all.
    with pytest.raises(InvalidInput, match=r"(?s)'robust-order'.*quantity"):
        await served.client.start(flows.order, bad)
    assert await served.client.list(workflow="robust-order") == []
    # A client that does not know it stores the run; the worker fails it, naming the workflow.
    run = await served.finish("robust-order", bad)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "InvalidInput"
    assert "'robust-order'" in run.error["message"]
    assert "quantity" in run.error["message"]
    good = await served.finish("robust-order", {"item": "tea", "quantity": 2})
    assert good.output == {"item": "tea", "quantity": 2}
    await served.assert_still_serving()


async def test_unknown_workflow_waits_visibly(served: Served) -> None:
    started = await asyncio.to_thread(
        served.procs.cli, "start", "nope", "--database-url", served.url
    )
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    assert "no live worker serves workflow 'nope'" in started.stderr

    await served.assert_still_serving()
    shown = await asyncio.to_thread(
        served.procs.cli, "runs", "show", run_id, "--database-url", served.url
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["status"] == "pending"
    assert doc["claims"] == 0
    assert doc["waiting"] == "no live worker serves workflow 'nope'"

    ran = await asyncio.to_thread(
        served.procs.cli, "run", str(FLOWS), "nope", "--database-url", served.url
    )
    assert ran.returncode != 0
    assert "unknown workflow 'nope'" in ran.stderr
    assert "robust-echo" in ran.stderr
    assert "robust-gated" in ran.stderr


def test_two_workflows_under_one_name_stop_the_worker_from_starting(
    procs: Procs, tmp_path: Path
) -> None:
    worker = procs.worker(DUPLICATES, f"sqlite:///{tmp_path / 'stepwise.db'}")
    assert worker.wait(30) != 0
    log = worker.log()
    assert "two workflows are registered under the name 'robust-duplicate'" in log
    assert "first_definition" in log
    assert "second_definition" in log
    assert "Traceback" not in log
