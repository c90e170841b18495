"""``max_payload_bytes`` bounds every payload a run stores, as JSON: its input (the client
refuses it, storing nothing), each step's result (that step fails, once: the same code would
return the same value again) and the workflow's output (the run fails)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness.workers import Procs
from stepwise import (
    Client,
    InvalidArgument,
    InvalidInput,
    Registry,
    Run,
    RunStatus,
    StepStatus,
    Worker,
    workflow,
)
from stepwise.backends import open_backend
from stepwise.core import codec

LIMIT = 1000
registry = Registry()


@workflow("payloads", registry=registry)
async def payloads(ctx: Any) -> Any:
    """Returns ``ctx.input["output"]`` characters, after a step returning ``["step"]`` ones."""
    await ctx.step.run("sized", lambda: "x" * ctx.input["step"])
    return "x" * ctx.input["output"]


ODD_TEXT = "nul \x00, lone surrogate \ud800, emoji \U0001f600"
"""Text no backend stores as such, but JSON escapes (``\\u0000``): fine in a payload."""


@workflow("odd-text", registry=registry)
async def odd_text(ctx: Any) -> Any:
    return [ctx.input, await ctx.step.run("odd", lambda: ODD_TEXT)]


async def _run(
    url: str, step: int, output: int, flow: Any = payloads, *, client_limit: int | None = None
) -> tuple[Run, list[Any]]:
    """Runs ``flow`` to its end on an in-process worker limited to ``LIMIT`` bytes: by its own
    setting, which wins over its client's default, or (given ``client_limit``) by the limit it
    inherits from its client."""
    limit = codec.DEFAULT_MAX_PAYLOAD_BYTES if client_limit is None else client_limit
    async with Client.connect(url, max_payload_bytes=limit) as client:
        own = LIMIT if client_limit is None else None
        worker = Worker(client, registry, poll_interval=0.05, max_payload_bytes=own)
        stop = asyncio.Event()
        serving = asyncio.create_task(worker.run(stop))
        try:
            started = await client.start(flow, {"step": step, "output": output})
            run = await client.wait_finished(started.id, timeout=30)
            return run, await client.steps(run.id)
        finally:
            stop.set()
            await serving


async def test_a_step_result_over_the_limit_fails_that_step_once(backend_url: str) -> None:
    run, [step] = await _run(backend_url, step=LIMIT, output=1)  # 2 quotes over
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepResultError"
    message = f"step 'sized': result is {LIMIT + 2} bytes as JSON, over the limit of {LIMIT}"
    assert message in run.error["message"]
    assert (step.key, step.status, step.attempts) == ("sized", StepStatus.FAILED, 1)


async def test_a_worker_inherits_its_clients_limit(backend_url: str) -> None:
    run, [step] = await _run(backend_url, step=LIMIT, output=1, client_limit=LIMIT)
    assert run.error is not None
    assert f"over the limit of {LIMIT} bytes" in run.error["message"]
    assert step.status is StepStatus.FAILED


async def test_payloads_up_to_the_limit_are_stored(backend_url: str) -> None:
    run, [step] = await _run(backend_url, step=LIMIT - 2, output=LIMIT - 2)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == step.output == "x" * (LIMIT - 2)


async def test_nul_and_lone_surrogates_inside_payloads_are_stored(backend_url: str) -> None:
    run, [step] = await _run(backend_url, step=1, output=1, flow=odd_text)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert step.output == ODD_TEXT
    assert run.output == [{"step": 1, "output": 1}, ODD_TEXT]


async def test_a_workflow_output_over_the_limit_fails_the_run(backend_url: str) -> None:
    run, [step] = await _run(backend_url, step=1, output=LIMIT)
    assert step.status is StepStatus.COMPLETED
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepResultError"
    assert "step '<workflow result>'" in run.error["message"]
    assert f"over the limit of {LIMIT} bytes" in run.error["message"]


async def test_an_input_over_the_limit_is_refused_and_nothing_stored(backend_url: str) -> None:
    async with Client.connect(backend_url, max_payload_bytes=LIMIT) as client:
        await client.start("payloads", "x" * (LIMIT - 2))
        with pytest.raises(InvalidInput, match=f"is {LIMIT + 2} bytes as JSON, over the limit"):
            await client.start("payloads", "x" * LIMIT)
        assert len(await client.list()) == 1


@pytest.mark.parametrize("limit", [0, -1, codec.MAX_PAYLOAD_BYTES + 1])
def test_a_limit_out_of_range_is_refused(limit: int) -> None:
    backend = open_backend("sqlite:///never-opened.db")
    with pytest.raises(InvalidArgument, match="max_payload_bytes must be from 1 to"):
        Worker(backend, registry, max_payload_bytes=limit)
    with pytest.raises(InvalidArgument, match="max_payload_bytes must be from 1 to"):
        Client(backend, max_payload_bytes=limit)


FLOWS = str(Path(__file__).with_name("flows.py"))


def test_the_cli_refuses_an_input_over_the_limit_and_stores_nothing(
    procs: Procs, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    flag = procs.cli("start", "robust-echo", "--input", '"abcdef"', "--max-payload-bytes", "5",
                     "--database-url", url)  # fmt: skip
    variable = procs.cli("start", "robust-echo", "--input", '"abcdef"', "--database-url", url,
                         env={"STEPWISE_MAX_PAYLOAD_BYTES": "5"})  # fmt: skip
    for result in (flag, variable):
        assert result.returncode == 2, result.stderr
        assert "is 8 bytes as JSON, over the limit of 5 bytes" in result.stderr
        assert "Traceback" not in result.stderr
    listed = procs.cli("runs", "list", "--database-url", url)
    assert (listed.returncode, listed.stdout.strip()) == (0, ""), listed.stderr


def test_stepwise_run_applies_the_limit_to_the_workflow_output(
    procs: Procs, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = procs.cli("run", FLOWS, "robust-echo", "--input", '"abc"', "--max-payload-bytes",
                       "20", "--database-url", url)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "StepResultError: step '<workflow result>': result is" in result.stderr
    assert "over the limit of 20 bytes" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--max-payload-bytes", "0"], {}, "--max-payload-bytes"),
        (["--max-payload-bytes", "lots"], {}, "--max-payload-bytes"),
        ([], {"STEPWISE_MAX_PAYLOAD_BYTES": "-3"}, "'STEPWISE_MAX_PAYLOAD_BYTES'"),
        ([], {"STEPWISE_MAX_PAYLOAD_BYTES": str(10**12)}, "'STEPWISE_MAX_PAYLOAD_BYTES'"),
    ],
)
def test_the_cli_refuses_a_limit_out_of_range(
    procs: Procs, tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = procs.cli("worker", "--app", FLOWS, "--database-url", url, *args, env=env)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert named in line
    assert not (tmp_path / "cli.db").exists()
