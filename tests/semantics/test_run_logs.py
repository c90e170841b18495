"""Logs per run: ``ctx.log`` and plain ``logging`` inside a run are stored with it, on both
backends, read back with ``Client.logs`` / ``Client.log_tail``.

A line knows its step and the step's attempt (none in the body); plain logging from async and
sync steps is captured, the engine's own loggers are not; a retried step logs again under its
new attempt; a body replayed after a durable sleep does not store its lines twice; a run keeps
at most its cap of lines, then one marker counts the rest.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest

from stepwise import RunStatus, workflow
from stepwise.backends.base import LogEntry
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine

plain = logging.getLogger("tests.user_code")


@pytest.fixture(autouse=True)
def _root_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """What the worker command does: plain loggers' INFO records reach the root's handlers."""
    caplog.set_level(logging.INFO)


def lines(entries: list[LogEntry]) -> list[tuple[str | None, int | None, str]]:
    return [(e.step, e.attempt, e.text) for e in entries]


async def test_ctx_log_knows_the_step_and_plain_logging_is_captured(engine: Engine) -> None:
    def sync_step() -> int:
        plain.info("from a sync step's thread %s", threading.current_thread().name)
        logging.getLogger("stepwise.core.replay").info("the engine's own: not captured")
        return 1

    async def async_step() -> int:
        plain.warning("from an async step")
        plain.debug("below the capture level: not captured")
        return 2

    @workflow("logs-basic", registry=engine.registry)
    async def flow(ctx: Any) -> int:
        ctx.log.info("body says %s", "hi")
        a, b = await asyncio.gather(
            ctx.step.run("sync", sync_step), ctx.step.run("async", async_step)
        )
        await ctx.step.run("ctx", lambda: ctx.log.info("inside step ctx"))
        ctx.log.error("done")
        return int(a + b)

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED
    logged = await engine.client.logs(run.id)
    got = lines(logged)
    assert got[0] == (None, 1, "body says hi")
    assert ("sync", 1, "from a sync step's thread stepwise-step") in got
    assert ("async", 1, "from an async step") in got
    assert ("ctx", 1, "inside step ctx") in got
    assert got[-1] == (None, 1, "done")
    assert len(got) == 5
    assert [e.seq for e in logged] == sorted(e.seq for e in logged)
    by_text = {e.text: e for e in logged}
    assert by_text["from an async step"].level == logging.WARNING
    assert by_text["from an async step"].logger == "tests.user_code"
    assert by_text["body says hi"].logger == "stepwise.workflow"
    assert by_text["done"].level == logging.ERROR
    assert lines(await engine.client.log_tail(run.id, 2)) == got[-2:]
    after = await engine.client.logs(run.id, after=logged[2].seq)
    assert lines(after) == got[3:]


async def test_a_retried_step_logs_each_attempt(engine: Engine) -> None:
    tries = 0

    def flaky() -> str:
        nonlocal tries
        tries += 1
        plain.info("try %d", tries)
        if tries < 3:
            raise RuntimeError("not yet")
        return "ok"

    @workflow("logs-retried", registry=engine.registry)
    async def flow(ctx: Any) -> str:
        from stepwise import RetryPolicy

        policy = RetryPolicy(max_attempts=3, initial_interval=0.01)
        result: str = await ctx.step.run("flaky", flaky, retry=policy)
        return result

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED
    assert lines(await engine.client.logs(run.id)) == [
        ("flaky", 1, "try 1"),
        ("flaky", 2, "try 2"),
        ("flaky", 3, "try 3"),
    ]


async def test_body_lines_are_stored_once_across_replays(engine: Engine) -> None:
    @workflow("logs-replayed", registry=engine.registry)
    async def flow(ctx: Any) -> None:
        ctx.log.info("before the sleep")
        await ctx.step.sleep("nap", 0.2)
        ctx.log.info("after the sleep")
        await ctx.step.sleep("nap-again", 0.2)
        ctx.log.info("at the end")

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED
    assert run.claims >= 3  # the body ran three times
    assert [e.text for e in await engine.client.logs(run.id)] == [
        "before the sleep",
        "after the sleep",
        "at the end",
    ]


async def test_a_run_keeps_its_cap_of_lines_then_counts_the_rest(engine: Engine) -> None:
    @workflow("logs-capped", registry=engine.registry)
    async def flow(ctx: Any) -> None:
        for n in range(25):
            ctx.log.info("line %d", n)
        await ctx.step.run("one", lambda: [ctx.log.info("in step %d", n) for n in range(5)])

    engine.registry.add(flow)
    started = await engine.client.start(flow, None)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.worker(max_log_records=10).run(stop))
    try:
        run = await engine.client.wait_finished(started.id, timeout=30)
    finally:
        stop.set()
        await task
    assert run.status is RunStatus.SUCCEEDED
    logged = await engine.client.logs(run.id)
    assert [e.text for e in logged[:10]] == [f"line {n}" for n in range(10)]
    assert len(logged) == 11
    marker = logged[-1]
    assert marker.dropped == 20
    assert marker.text.startswith("20 more log line(s) dropped")
    assert marker.seq > logged[-2].seq


async def test_a_message_no_database_can_store_is_cleaned_not_fatal(engine: Engine) -> None:
    @workflow("logs-unstorable", registry=engine.registry)
    async def flow(ctx: Any) -> str:
        ctx.log.info("nul \x00 and lone \udc80 surrogate")
        ctx.log.info("x" * 20_000)
        return "ok"

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED
    first, long = await engine.client.logs(run.id)
    assert first.text == "nul \ufffd and lone ? surrogate"
    assert len(long.text) < 8300
    assert long.text.endswith("[cut at 8192 chars]")


async def test_lines_of_a_long_step_arrive_before_it_ends(engine: Engine) -> None:
    release = threading.Event()

    def long_step() -> None:
        plain.info("still working")
        release.wait(30)

    @workflow("logs-early", registry=engine.registry)
    async def flow(ctx: Any) -> None:
        await ctx.step.run("long", long_step)

    engine.registry.add(flow)
    started = await engine.client.start(flow, None)
    waiting = asyncio.create_task(
        run_to_completion(engine.client, engine.registry, started.id, timeout=30)
    )
    try:
        for _ in range(500):
            if await engine.client.logs(started.id):
                break
            await asyncio.sleep(0.02)
        assert lines(await engine.client.logs(started.id)) == [("long", 1, "still working")]
        assert (await engine.client.get(started.id)).status is RunStatus.RUNNING
    finally:
        release.set()
    assert (await waiting).status is RunStatus.SUCCEEDED


async def test_every_line_of_many_concurrent_runs_is_stored_with_its_run(engine: Engine) -> None:
    """200 runs at once, their lines sharing batches: when a run has finished, every line it
    logged is stored, once, with its own run and step, also a sync step's last line logged
    right before it returned (from its thread)."""

    def sync_step(n: int) -> int:
        plain.info("sync first %d", n)
        plain.info("sync last %d", n)
        return n

    async def async_step(n: int) -> int:
        plain.info("async %d", n)
        await asyncio.sleep(0)
        plain.info("async again %d", n)
        return n

    @workflow("logs-many", registry=engine.registry)
    async def flow(ctx: Any) -> int:
        n = ctx.input
        ctx.log.info("begin %d", n)
        a, b = await asyncio.gather(
            ctx.step.run("sync", lambda: sync_step(n)), ctx.step.run("async", async_step, n)
        )
        ctx.log.info("end %d", n)
        return int(a + b)

    engine.registry.add(flow)
    started = [await engine.client.start(flow, n) for n in range(200)]
    stop = asyncio.Event()
    task = asyncio.create_task(engine.worker(concurrency=50).run(stop))
    try:
        for n, run in enumerate(started):
            finished = await engine.client.wait_finished(run.id, timeout=120)
            assert finished.status is RunStatus.SUCCEEDED
            got = sorted(lines(await engine.client.logs(run.id)), key=str)
            assert got == sorted(
                [
                    (None, 1, f"begin {n}"),
                    ("sync", 1, f"sync first {n}"),
                    ("sync", 1, f"sync last {n}"),
                    ("async", 1, f"async {n}"),
                    ("async", 1, f"async again {n}"),
                    (None, 1, f"end {n}"),
                ],
                key=str,
            ), run.id
    finally:
        stop.set()
        await task


async def test_a_canceled_runs_later_lines_are_not_stored(engine: Engine) -> None:
    """Lines are fenced like every write: once the run is canceled, what its step still logs
    is refused (or dropped once the worker gave the run up), and the worker carries on."""
    logged_first, release, logged_last = threading.Event(), threading.Event(), threading.Event()

    def step() -> None:
        plain.info("before the cancel")
        logged_first.set()
        release.wait(30)
        plain.info("after the cancel")
        logged_last.set()

    @workflow("logs-canceled", registry=engine.registry)
    async def flow(ctx: Any) -> None:
        await ctx.step.run("slow", step)

    @workflow("logs-next", registry=engine.registry)
    async def after(ctx: Any) -> str:
        ctx.log.info("next run")
        return "ok"

    engine.registry.add(flow)
    engine.registry.add(after)
    run = await engine.client.start(flow, None)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.worker().run(stop))
    try:
        await asyncio.to_thread(logged_first.wait, 30)
        for _ in range(500):  # the first line goes out within the journal's flush delay
            if await engine.client.logs(run.id):
                break
            await asyncio.sleep(0.02)
        await engine.client.cancel(run.id)
        release.set()
        await asyncio.to_thread(logged_last.wait, 30)
        nxt = await engine.client.start(after, None)
        assert (await engine.client.wait_finished(nxt.id, timeout=30)).status is RunStatus.SUCCEEDED
        assert [e.text for e in await engine.client.logs(nxt.id)] == ["next run"]
    finally:
        release.set()
        stop.set()
        await task
    assert [e.text for e in await engine.client.logs(run.id)] == ["before the cancel"]


def test_capturing_does_not_silence_an_application_without_logging_setup() -> None:
    """The capture handler on the root logger must not hide warnings from an application that
    configured no logging (Python prints those through ``logging.lastResort``)."""
    code = (
        "import logging; from stepwise.core import runlog; runlog.capture(); "
        "logging.getLogger('app').warning('still shown'); logging.getLogger('app').info('not')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stderr == "still shown\n"
