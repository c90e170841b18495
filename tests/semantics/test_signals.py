"""Signals: ``client.signal`` and ``ctx.step.wait_for_signal``, on both backends.

Buffered (a signal sent before the wait is kept for it), each delivered exactly once, in send
order per name; a timeout returns None; a repeated idempotency key is a no-op; a finished run
refuses signals; a replay returns the payload received; a run parked on a wait holds no slot.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from stepwise import Run, RunFinished, RunNotFound, RunStatus, StepStatus, workflow
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serving(engine: Engine, **kw: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.worker(**kw).run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def finish(engine: Engine, run_id: str) -> Run:
    """Execute the run, started earlier, until it finished."""
    return await run_to_completion(engine.client, engine.registry, run_id, timeout=30)


async def waiting(engine: Engine, run_id: str, key: str) -> bool:
    """Whether the run is parked with step ``key`` waiting."""
    run = await engine.client.get(run_id)
    steps = {s.key: s for s in await engine.client.steps(run_id)}
    step = steps.get(key)
    return (
        run.status is RunStatus.SLEEPING and step is not None and step.status is StepStatus.SLEEPING
    )


async def test_a_signal_sent_before_the_wait_is_kept_for_it(engine: Engine) -> None:
    @workflow("buffered", registry=engine.registry)
    async def buffered(ctx: Any) -> Any:
        return await ctx.step.wait_for_signal("approve")

    run = await engine.client.start(buffered)
    sent = await engine.client.signal(run.id, "approve", {"by": "ada"})
    assert sent.delivered_to is None
    done = await finish(engine, run.id)
    assert done.output == {"by": "ada"}
    (signal,) = await engine.client.signals(run.id)
    assert signal.delivered_to == "approve"
    assert signal.delivered_at is not None


async def test_a_parked_wait_holds_no_slot_and_resumes_when_signaled(engine: Engine) -> None:
    @workflow("parked", registry=engine.registry)
    async def parked(ctx: Any) -> Any:
        return await ctx.step.wait_for_signal("go")

    @workflow("quick", registry=engine.registry)
    async def quick(ctx: Any) -> str:
        return str(await ctx.step.run("work", lambda: "done"))

    async with serving(engine, concurrency=1):
        run = await engine.client.start(parked)
        await until(lambda: waiting(engine, run.id, "go"), "the wait to park the run")
        other = await engine.client.start(quick)  # the only slot is free
        assert await engine.client.wait(other.id, timeout=10) == "done"
        await engine.client.signal(run.id, "go", [1, 2])
        assert await engine.client.wait(run.id, timeout=10) == [1, 2]


async def test_each_signal_is_delivered_once_in_send_order_per_name(engine: Engine) -> None:
    @workflow("ordered", registry=engine.registry)
    async def ordered(ctx: Any) -> Any:
        items = [await ctx.step.wait_for_signal("item") for _ in range(4)]
        other = await ctx.step.wait_for_signal("other")
        rest = await ctx.step.wait_for_signal("item", timeout=0)
        return {"items": items, "other": other, "rest": rest}

    run = await engine.client.start(ordered)
    for n in range(3):
        await engine.client.signal(run.id, "item", n)
        await engine.client.signal(run.id, "other", f"o{n}")
    async with serving(engine):
        await until(lambda: waiting(engine, run.id, "item:3"), "the fourth wait")
        await engine.client.signal(run.id, "item", 3)
        assert await engine.client.wait(run.id, timeout=10) == {
            "items": [0, 1, 2, 3],
            "other": "o0",
            "rest": None,
        }
    signals = await engine.client.signals(run.id)
    delivered = [(s.name, s.payload, s.delivered_to) for s in signals if s.delivered_to]
    assert sorted(delivered, key=str) == sorted(
        [
            ("item", 0, "item"),
            ("item", 1, "item:1"),
            ("item", 2, "item:2"),
            ("item", 3, "item:3"),
            ("other", "o0", "other"),
        ],
        key=str,
    )
    kept = [(s.name, s.payload) for s in signals if s.delivered_to is None]
    assert kept == [("other", "o1"), ("other", "o2")]


async def test_a_timeout_returns_none_and_a_late_signal_stays_kept(engine: Engine) -> None:
    @workflow("impatient", registry=engine.registry)
    async def impatient(ctx: Any) -> Any:
        return {"got": await ctx.step.wait_for_signal("reply", timeout=0.3)}

    done = await engine.run(impatient)
    assert done.output == {"got": None}
    (step,) = await engine.client.steps(done.id)
    assert (step.key, step.status, step.output) == ("reply", StepStatus.COMPLETED, None)
    with pytest.raises(RunFinished, match="has finished"):
        await engine.client.signal(done.id, "reply", "late")


async def test_a_repeated_idempotency_key_sends_nothing(engine: Engine) -> None:
    @workflow("once", registry=engine.registry)
    async def once(ctx: Any) -> Any:
        first = await ctx.step.wait_for_signal("pay")
        second = await ctx.step.wait_for_signal("pay", timeout=0)
        return [first, second]

    run = await engine.client.start(once)
    a = await engine.client.signal(run.id, "pay", 10, idempotency_key="invoice-1")
    b = await engine.client.signal(run.id, "pay", 99, idempotency_key="invoice-1")
    assert (b.seq, b.payload) == (a.seq, 10)
    done = await finish(engine, run.id)
    assert done.output == [10, None]
    assert len(await engine.client.signals(run.id)) == 1


async def test_a_signal_to_a_finished_or_unknown_run_is_refused(engine: Engine) -> None:
    @workflow("short", registry=engine.registry)
    async def short(ctx: Any) -> str:
        return "done"

    done = await engine.run(short)
    with pytest.raises(RunFinished, match=rf"run {done.id} has finished \(succeeded\)"):
        await engine.client.signal(done.id, "go")
    canceled = await engine.client.start(short)
    await engine.client.cancel(canceled.id)
    with pytest.raises(RunFinished, match="canceled"):
        await engine.client.signal(canceled.id, "go")
    with pytest.raises(RunNotFound):
        await engine.client.signal("7b1e0c4e-0000-4000-8000-000000000000", "go")
    assert await engine.client.signals(done.id) == []


async def test_a_replay_returns_the_payload_received(engine: Engine) -> None:
    executions: list[int] = []

    @workflow("replayed", registry=engine.registry)
    async def replayed(ctx: Any) -> Any:
        executions.append(1)
        payload = await ctx.step.wait_for_signal("go")
        await ctx.step.sleep("nap", 0.1)  # parks the run: the next execution replays the wait
        return payload

    run = await engine.client.start(replayed)
    await engine.client.signal(run.id, "go", {"n": 1})
    done = await finish(engine, run.id)
    assert done.output == {"n": 1}
    assert len(executions) == 2  # the second one got the payload from the stored step
    assert [s.delivered_to for s in await engine.client.signals(run.id)] == ["go"]


async def test_a_signal_sent_while_the_run_is_running_wakes_it_when_it_parks(
    engine: Engine,
) -> None:
    """The wait is stored, the run still runs another step when the signal arrives (nothing
    parked to wake), then parks: it must be due at once, not wait forever."""
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    @workflow("racing", registry=engine.registry)
    async def racing(ctx: Any) -> Any:
        got, done = await asyncio.gather(ctx.step.wait_for_signal("go"), ctx.step.run("slow", slow))
        return [got, done]

    async def wait_stored() -> bool:
        steps = {s.key: s for s in await engine.client.steps(run.id)}
        return "go" in steps and steps["go"].status is StepStatus.SLEEPING

    async with serving(engine):
        run = await engine.client.start(racing)
        await until(wait_stored, "the wait to be stored")
        assert (await engine.client.get(run.id)).status is RunStatus.RUNNING
        await engine.client.signal(run.id, "go", "now")
        release.set()
        assert await engine.client.wait(run.id, timeout=10) == ["now", "slow"]


async def test_signals_racing_the_waits_of_many_runs_all_arrive(engine: Engine) -> None:
    """Signals sent at random moments around each run's wait (before it, while the run still
    runs, once it is parked): every run receives its own signal."""
    rng = random.Random(12)

    async def jitter(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @workflow("raced", registry=engine.registry)
    async def raced(ctx: Any) -> Any:
        await ctx.step.run("jitter", jitter, ctx.input["before"])
        return await ctx.step.wait_for_signal("go")

    async def send(run_id: str, delay: float, n: int) -> None:
        await asyncio.sleep(delay)
        await engine.client.signal(run_id, "go", n)

    async with serving(engine, concurrency=50):
        plans = [(rng.uniform(0, 0.05), rng.uniform(0, 0.08)) for _ in range(60)]
        runs = [await engine.client.start(raced, {"before": before}) for before, _ in plans]
        await asyncio.gather(
            *(
                send(run.id, delay, n)
                for n, (run, (_, delay)) in enumerate(zip(runs, plans, strict=True))
            )
        )
        outputs = [await engine.client.wait(run.id, timeout=30) for run in runs]
    assert outputs == list(range(len(runs)))
