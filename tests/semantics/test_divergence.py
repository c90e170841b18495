"""A replay that diverges from the stored history is detected and reported.

The "deploy" happens between two executions of one run: a worker runs the first step and
puts the run to sleep; it stops; the workflow's code changes; a second worker resumes the run.
A step renamed (or removed) leaves a completed step of the history unrequested while the code
asks for steps the history does not hold: that is reported as a warning stored on the run (and
to the worker's listener, which feeds the metric). With ``on_divergence="fail"`` the run fails
with ``ReplayDiverged`` instead. Code that replays faithfully, or only reorders its steps under
the same names (each name is its own memo key), is not reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.workers import async_wait_until
from stepwise import Registry, RunStatus, workflow
from stepwise.core.events import ExecutionListener
from stepwise.errors import InvalidArgument
from tests.conftest import Engine


class Diverged(ExecutionListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str], list[str]]] = []

    def run_diverged(self, run_id: str, workflow: str, missing: list[str], new: list[str]) -> None:
        self.seen.append((run_id, missing, new))


async def _deploy_between_executions(
    engine: Engine, before: list[str], after: list[str], **worker: Any
) -> tuple[Any, Diverged]:
    """Run steps ``before`` then a short sleep on one worker; resume with steps ``after`` (then
    the rest) on another; returns the finished run and what the second worker's listener saw."""
    code = {"names": before}

    @workflow("deployed", registry=Registry())
    async def deployed(ctx: Any) -> list[str]:
        done = [await ctx.step.run(name, lambda name=name: name) for name in code["names"]]
        await ctx.step.sleep("pause", 0.2)
        done.append(await ctx.step.run("after-the-pause", lambda: "last"))
        return done

    engine.registry.add(deployed)
    run = await engine.client.start(deployed, None)
    stop = asyncio.Event()
    first = asyncio.create_task(engine.worker().run(stop))

    async def sleeping() -> bool:
        return (await engine.client.get(run.id)).status is RunStatus.SLEEPING

    await async_wait_until(sleeping, 30, "the run sleeps")
    stop.set()
    await first

    code["names"] = after  # the deploy
    listener = Diverged()
    stop = asyncio.Event()
    second = asyncio.create_task(engine.worker(listener=listener, **worker).run(stop))
    try:
        finished = await engine.client.wait_finished(run.id, timeout=30)
    finally:
        stop.set()
        await second
    return finished, listener


async def test_a_renamed_step_is_reported_as_a_warning_on_the_run(engine: Engine) -> None:
    run, listener = await _deploy_between_executions(engine, ["fetch", "charge"], ["fetch", "bill"])
    assert run.status is RunStatus.SUCCEEDED
    assert run.warning is not None
    assert run.warning["type"] == "ReplayDiverged"
    assert (run.warning["missing"], run.warning["new"]) == (["charge"], ["after-the-pause", "bill"])
    assert "never requested completed steps ['charge']" in run.warning["message"]
    assert listener.seen == [(run.id, ["charge"], ["after-the-pause", "bill"])]


async def test_a_removed_step_is_reported(engine: Engine) -> None:
    run, _ = await _deploy_between_executions(engine, ["fetch", "charge"], ["fetch"])
    assert run.status is RunStatus.SUCCEEDED
    assert run.warning is not None
    assert run.warning["missing"] == ["charge"]


async def test_with_on_divergence_fail_the_run_fails(engine: Engine) -> None:
    run, listener = await _deploy_between_executions(
        engine, ["fetch", "charge"], ["fetch", "bill"], on_divergence="fail"
    )
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "ReplayDiverged"
    assert "['charge']" in run.error["message"]
    assert run.warning is not None
    assert len(listener.seen) == 1


@pytest.mark.parametrize("after", [["fetch", "charge"], ["charge", "fetch"]], ids=["same", "swap"])
async def test_a_faithful_or_reordered_replay_is_not_reported(
    engine: Engine, after: list[str]
) -> None:
    run, listener = await _deploy_between_executions(engine, ["fetch", "charge"], after)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == [*after, "last"]
    assert run.warning is None
    assert listener.seen == []


async def test_a_workflow_error_that_stops_a_replay_early_is_not_divergence(
    engine: Engine,
) -> None:
    """Missing steps with nothing new requested, in a run that fails: a workflow error may
    legitimately stop a replay before it reached its stored steps."""
    flaky = {"fail": False}

    @workflow("fails-early", registry=Registry())
    async def fails_early(ctx: Any) -> None:
        if flaky["fail"]:
            raise RuntimeError("a dependency is down")
        await ctx.step.run("first", lambda: 1)
        await ctx.step.sleep("pause", 0.2)

    engine.registry.add(fails_early)
    started = await engine.client.start(fails_early, None)
    stop = asyncio.Event()
    worker = asyncio.create_task(engine.worker().run(stop))

    async def sleeping() -> bool:
        return (await engine.client.get(started.id)).status is RunStatus.SLEEPING

    try:
        await async_wait_until(sleeping, 30, "the run sleeps")
        flaky["fail"] = True
        failed = await engine.client.wait_finished(started.id, timeout=30)
    finally:
        stop.set()
        await worker
    assert failed.status is RunStatus.FAILED
    assert failed.warning is None


def test_an_unknown_setting_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidArgument, match="on_divergence must be one of warn, fail"):
        engine.worker(on_divergence="ignore")
