"""Bad input meets a real worker process: each case is a clear error naming the culprit, the
bad run ends in a consistent stored state, and the same process keeps serving good runs.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.workers import Proc, Procs
from stepwise import (
    Client,
    InvalidArgument,
    InvalidInput,
    Registry,
    Run,
    RunStatus,
    StepStatus,
    Worker,
)
from stepwise.backends import open_backend
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
        served.procs.cli, "runs", "show", run_id, "--json", "--database-url", served.url
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


@pytest.mark.parametrize(
    ("seconds", "problem"),
    [(1e300, "must be at most 3153600000 seconds"), (-5, "must be at least 0, got -5")],
)
async def test_sleep_duration_out_of_range_fails_the_run_naming_it(
    served: Served, seconds: float, problem: str
) -> None:
    run = await served.finish("robust-sleep", seconds)
    assert run.status is RunStatus.FAILED, served.worker.tail()
    assert run.error is not None
    assert run.error["type"] == "InvalidArgument"
    assert f"ctx.step.sleep duration {problem}" in run.error["message"]
    await served.assert_still_serving()


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` levels deep (built without recursion: 5,000 is fine)."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


UNSTARTABLE = [
    pytest.param({"workflow": "a b"}, InvalidArgument, "workflow name 'a b' is invalid", id="name"),
    pytest.param({"workflow": "w" * 6000}, InvalidArgument, "workflow name 'www", id="long-name"),
    pytest.param({"workflow": "a\x00b"}, InvalidArgument, "workflow name", id="nul-name"),
    pytest.param({"workflow": "ok\n"}, InvalidArgument, "workflow name", id="newline-name"),
    pytest.param(
        {"idempotency_key": "k" * 6000},
        InvalidArgument,
        "idempotency key must be at most 255 characters, got 6000",
        id="long-key",
    ),
    pytest.param(
        {"idempotency_key": "a\x00b"},
        InvalidArgument,
        "idempotency key must not contain a NUL character",
        id="nul-key",
    ),
    pytest.param({"idempotency_key": ""}, InvalidArgument, "must not be empty", id="empty-key"),
    pytest.param({"version": "v\x00"}, InvalidArgument, "version must not", id="nul-version"),
    pytest.param({"run_id": "r" * 6000}, InvalidArgument, "run id must be a UUID", id="run-id"),
    pytest.param(
        {"input": {"text": "a\x00b"}},
        InvalidInput,
        "input of workflow 'robust-echo' must not contain a NUL character",
        id="nul-input",
    ),
    pytest.param({"input": {"a\x00": 1}}, InvalidInput, "NUL", id="nul-input-key"),
    pytest.param({"input": ["\ud800"]}, InvalidInput, "lone surrogate", id="surrogate-input"),
    pytest.param(
        {"input": nested(5000)},
        InvalidInput,
        "input of workflow 'robust-echo' is nested more than 100 levels deep",
        id="deep-input",
    ),
    pytest.param({"input": nested(101)}, InvalidInput, "nested", id="101-deep"),
    pytest.param(
        {"deadline": timedelta(days=999_999_999)},
        InvalidArgument,
        "deadline must be at most",
        id="deadline-overflow",
    ),
    pytest.param(
        {"deadline": timedelta(seconds=-1)}, InvalidArgument, "deadline must be positive", id="past"
    ),
]


@pytest.mark.parametrize(("arguments", "error", "message"), UNSTARTABLE)
async def test_start_refuses_bad_arguments_and_stores_nothing(
    backend_url: str, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    async with Client.connect(backend_url) as client:
        with pytest.raises(error, match=re.escape(message)):
            await client.start(**({"workflow": "robust-echo"} | arguments))
        assert await client.list() == []
        # The edges of what is accepted are stored alike by both backends.
        run = await client.start(
            "robust-echo",
            nested(100),
            idempotency_key="k" * 255,
            run_id=str(uuid.uuid4()).upper(),
        )
        assert (await client.get(run.id)).idempotency_key == "k" * 255
        assert run.id == run.id.lower()


async def test_client_durations_and_limits_are_checked(backend_url: str) -> None:
    async with Client.connect(backend_url) as client:
        run = await client.start("robust-echo")
        for timeout in (math.nan, -1.0, math.inf):
            with pytest.raises(InvalidArgument, match=r"^timeout must be"):
                await asyncio.wait_for(client.wait(run.id, timeout=timeout), 5)
        with pytest.raises(TypeError, match="timeout must be a number"):
            await client.wait(run.id, timeout="soon")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="limit must be from 1 to 10000, got 10001"):
            await client.list(limit=10_001)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("concurrency", 0, InvalidArgument),
        ("concurrency", 10**10, InvalidArgument),
        ("concurrency", 2.5, TypeError),
        ("lease_seconds", math.nan, InvalidArgument),
        ("lease_seconds", 0, InvalidArgument),
        ("poll_interval", math.nan, InvalidArgument),
        ("poll_interval", math.inf, InvalidArgument),
        ("shutdown_grace", -1, InvalidArgument),
        ("shutdown_grace", "25", TypeError),
    ],
)
def test_worker_options_are_checked(option: str, value: Any, error: type[Exception]) -> None:
    backend = open_backend("sqlite:///never-opened.db")
    with pytest.raises(error, match=f"^{option} must"):
        Worker(backend, Registry(), **{option: value})
