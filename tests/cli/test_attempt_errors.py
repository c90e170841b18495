"""Every attempt's error stays visible: a step row keeps one error, so each failed attempt's
stored error document carries the errors of the attempts before it (``earlier``), also across
executions (an attempt made by a worker that died), and ``runs show`` prints them all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepwise import RetryPolicy, StepStatus, WorkflowContext, workflow
from stepwise.backends.base import ReleaseRun, StepFinished, StepStarted
from stepwise.core import codec
from stepwise.core.registry import Registry
from stepwise.core.steps import MAX_EARLIER
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine


def failing(registry: Registry, name: str, attempts: int | None) -> Any:
    @workflow(name, registry=registry)
    async def flow(ctx: WorkflowContext) -> None:
        def fail() -> None:
            raise ValueError(f"no luck, try {ctx.input}")

        policy = RetryPolicy(max_attempts=attempts, initial_interval=0.001, max_interval=0.001)
        await ctx.step.run("flaky", fail, retry=policy)

    return flow


async def test_each_failed_attempt_keeps_the_errors_before_it(engine: Engine) -> None:
    run = await engine.run(failing(engine.registry, "three-tries", 3), "x")
    [step] = await engine.client.steps(run.id)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 3)
    assert step.error is not None
    assert step.error["attempt"] == 3
    assert [e["attempt"] for e in step.error["earlier"]] == [1, 2]
    assert {e["message"] for e in step.error["earlier"]} == {"no luck, try x"}
    assert all("traceback" not in e for e in step.error["earlier"])


async def test_an_attempt_of_an_earlier_execution_is_kept(engine: Engine) -> None:
    """The first attempt failed on a worker that then gave the run back (or died)."""
    definition = failing(engine.registry, "resumed", 2)
    client = engine.client
    run = await client.start(definition, "y")
    [claimed] = await client.backend.claim_runs("w", ["resumed"], 1, 30.0)
    now = datetime.now(UTC)
    token = claimed.lease_token
    first = codec.dumps({"type": "OSError", "message": "disk gone", "attempt": 1})
    await client.backend.write(
        [
            StepStarted(token, run.id, "flaky", 1, now),
            StepFinished(token, run.id, "flaky", StepStatus.FAILED, None, first, 1, now, now),
            ReleaseRun(token, run.id),
        ]
    )
    await run_to_completion(client, engine.registry, run.id, timeout=30)
    [step] = await client.steps(run.id)
    assert step.attempts == 2
    assert step.error is not None
    assert step.error["earlier"] == [{"attempt": 1, "type": "OSError", "message": "disk gone"}]


async def test_unlimited_retries_keep_a_bounded_history(engine: Engine) -> None:
    definition = failing(engine.registry, "bounded", MAX_EARLIER + 5)
    run = await engine.run(definition, "z")
    [step] = await engine.client.steps(run.id)
    assert step.error is not None
    kept = [e["attempt"] for e in step.error["earlier"]]
    assert kept == list(range(5, MAX_EARLIER + 5))
