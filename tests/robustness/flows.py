"""Workflows the robustness tests run in real worker processes (``--app`` this file).

Every step that matters writes to a *ledger* outside the worker: one line per event, appended
with a single ``O_APPEND`` write so lines from concurrent processes never interleave and a
SIGKILL cannot leave half a line. A step execution logs ``start`` when its function begins
and ``done`` right before it returns, tagged with an execution id (``pid-random``) that the
step also returns, so the stored output says which execution's result was kept. The tests
read the ledger back with ``read_ledger`` and compare it with the stored steps.

Inputs carry the ledger path and any gate files: a gated step waits until its gate file
exists, so a test decides exactly when an in-flight step may finish.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from stepwise import RetryPolicy, WorkflowContext, workflow

GATE_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger line: ``event`` is ``start`` or ``done``; ``at`` is wall-clock seconds."""

    event: str
    run_id: str
    key: str
    execution: str
    at: float

    @property
    def pid(self) -> int:
        return int(self.execution.split("-", 1)[0])


def record(ledger: str, event: str, run_id: str, key: str, execution: str) -> None:
    line = f"{event} {run_id} {key} {execution} {time.time():.6f}\n".encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_ledger(ledger: Path) -> list[Entry]:
    if not ledger.exists():
        return []
    entries = []
    for line in ledger.read_text(encoding="utf-8").splitlines():
        event, run_id, key, execution, at = line.split()
        entries.append(Entry(event, run_id, key, execution, float(at)))
    return entries


def _execution() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:10]}"


def gated_step(
    ledger: str, run_id: str, key: str, gate: str | None = None
) -> Callable[[], dict[str, Any]]:
    """A sync step (it runs in a worker thread) that waits for ``gate`` to exist, if given."""

    def step() -> dict[str, Any]:
        execution = _execution()
        record(ledger, "start", run_id, key, execution)
        while gate is not None and not Path(gate).exists():
            time.sleep(GATE_POLL_SECONDS)
        record(ledger, "done", run_id, key, execution)
        return {"execution": execution}

    return step


def timed_step(ledger: str, run_id: str, key: str, seconds: float) -> Callable[[], Any]:
    """An async step that takes ``seconds``."""

    async def step() -> dict[str, Any]:
        execution = _execution()
        record(ledger, "start", run_id, key, execution)
        await asyncio.sleep(seconds)
        record(ledger, "done", run_id, key, execution)
        return {"execution": execution}

    return step


@workflow("robust-parallel")
async def parallel(ctx: WorkflowContext[dict[str, str]]) -> list[dict[str, Any]]:
    """The seed's crash scenario: a and b return at once, c waits for its gate."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    return list(
        await asyncio.gather(
            ctx.step.run("step-a", gated_step(ledger, run_id, "step-a")),
            ctx.step.run("step-b", gated_step(ledger, run_id, "step-b")),
            ctx.step.run("step-c", gated_step(ledger, run_id, "step-c", ctx.input["gate"])),
        )
    )


@workflow("robust-mixed")
async def mixed(ctx: WorkflowContext[dict[str, Any]]) -> list[str]:
    """``steps`` steps of random short durations: half one after the other, half gathered."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    rng = random.Random(ctx.input["seed"])
    low, high = ctx.input["seconds"]
    plans = [(f"step-{i}", rng.uniform(low, high)) for i in range(ctx.input["steps"])]
    half = len(plans) // 2
    outputs = [
        await ctx.step.run(key, timed_step(ledger, run_id, key, seconds))
        for key, seconds in plans[:half]
    ]
    outputs += await asyncio.gather(
        *(ctx.step.run(key, timed_step(ledger, run_id, key, s)) for key, s in plans[half:])
    )
    return [output["execution"] for output in outputs]


@workflow("robust-gated")
async def gated(ctx: WorkflowContext[dict[str, str]]) -> dict[str, str]:
    """Two dependent steps, each waiting for its own gate file."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    first = await ctx.step.run("first", gated_step(ledger, run_id, "first", ctx.input["gate"]))
    second = await ctx.step.run(
        "second", gated_step(ledger, run_id, "second", ctx.input.get("gate2"))
    )
    return {"first": first["execution"], "second": second["execution"]}


@workflow("robust-echo")
async def echo(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    """A good run: proves the worker (``pid``) still serves after a bad one."""
    pid = await ctx.step.run("pid", os.getpid)
    return {"pid": pid, "input": ctx.input}


@workflow("robust-sleep")
async def sleep_for(ctx: WorkflowContext[Any]) -> str:
    """Sleeps ``ctx.input`` seconds, whatever that is: durations come from data too."""
    await ctx.step.sleep("nap", ctx.input)
    return "woke"


@workflow("robust-not-json")
async def not_json(ctx: WorkflowContext[Any]) -> Any:
    return await ctx.step.run("make-object", object)


@workflow("robust-bad-step-name")
async def bad_step_name(ctx: WorkflowContext[Any]) -> Any:
    return await ctx.step.run(42, lambda: 1)  # type: ignore[arg-type]


class Order(BaseModel):
    item: str
    quantity: int


@workflow("robust-order")
async def order(ctx: WorkflowContext[Order]) -> dict[str, Any]:
    return {"item": ctx.input.item, "quantity": ctx.input.quantity}


UNSTORABLE_NAMES = {"nul": "bad\x00name", "surrogate": "bad\ud800name"}
"""Step names no backend can store: Postgres refuses NUL in text, SQLite's driver refuses a
lone surrogate."""


@workflow("robust-neighbour")
async def neighbour(ctx: WorkflowContext[dict[str, str]]) -> list[str]:
    """A run with nothing wrong: one step returns at once, the next waits for the gate."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    first = await ctx.step.run("first", gated_step(ledger, run_id, "first"))
    second = await ctx.step.run("second", gated_step(ledger, run_id, "second", ctx.input["gate"]))
    return [first["execution"], second["execution"]]


@workflow("robust-unstorable")
async def unstorable(ctx: WorkflowContext[dict[str, Any]]) -> Any:
    """``robust-neighbour`` whose second step cannot be stored: its name is
    ``UNSTORABLE_NAMES[input["name"]]``, or its result is ``input["size"]`` characters long."""
    ledger, run_id, size = ctx.input["ledger"], ctx.run_id, ctx.input.get("size", 0)
    await ctx.step.run("first", gated_step(ledger, run_id, "first"))
    wait = gated_step(ledger, run_id, "second", ctx.input["gate"])

    def second() -> Any:
        result = wait()
        return "x" * size if size else result

    return await ctx.step.run(UNSTORABLE_NAMES.get(ctx.input.get("name", ""), "second"), second)


def dying_step(ledger: str, run_id: str, key: str, how: str) -> Callable[[], Any]:
    """A sync step that kills its own worker process: ``os._exit`` or SIGKILL."""

    def step() -> None:
        record(ledger, "start", run_id, key, _execution())
        if how == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGKILL)

    return step


@workflow("robust-die")
async def die(ctx: WorkflowContext[dict[str, str]]) -> None:
    """Completes ``prepare`` once, then ``resize`` kills every worker that runs it."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    await ctx.step.run("prepare", gated_step(ledger, run_id, "prepare"))
    await ctx.step.run("resize", dying_step(ledger, run_id, "resize", ctx.input["how"]))


@workflow("robust-die-after-progress")
async def die_after_progress(ctx: WorkflowContext[dict[str, Any]]) -> int:
    """``steps`` rounds of a step that completes, then one that kills its worker the first
    time it runs: many deaths, but never two without a completed step in between."""
    ledger, run_id, rounds = ctx.input["ledger"], ctx.run_id, int(ctx.input["steps"])
    for i in range(rounds):
        await ctx.step.run(f"work-{i}", gated_step(ledger, run_id, f"work-{i}"))
        crash = f"crash-{i}"
        if any(e.key == crash and e.run_id == run_id for e in read_ledger(Path(ledger))):
            await ctx.step.run(crash, gated_step(ledger, run_id, crash))
        else:
            await ctx.step.run(crash, dying_step(ledger, run_id, crash, "exit"))
    return rounds


@workflow("robust-block-loop")
async def block_loop(ctx: WorkflowContext[dict[str, Any]]) -> None:
    """An async step that blocks the event loop for ``seconds`` (a bug this guards against)."""
    ledger, run_id, seconds = ctx.input["ledger"], ctx.run_id, ctx.input["seconds"]

    async def blocking() -> None:
        record(ledger, "start", run_id, "block", _execution())
        time.sleep(seconds)  # blocks the loop: the bug this workflow stands for

    await ctx.step.run("block", blocking)


@workflow("robust-retry-later")
async def retry_later(ctx: WorkflowContext[dict[str, Any]]) -> str:
    """One step whose first execution fails; it is retried ``retry_seconds`` later, which
    leaves a test the time to freeze its worker meanwhile. Any later execution succeeds."""
    ledger, run_id = ctx.input["ledger"], ctx.run_id
    policy = RetryPolicy(max_attempts=3, initial_interval=ctx.input["retry_seconds"])

    def flaky() -> str:
        first = not any(e.run_id == run_id for e in read_ledger(Path(ledger)))
        execution = _execution()
        record(ledger, "start", run_id, "flaky", execution)
        if first:
            raise RuntimeError("the first execution fails")
        record(ledger, "done", run_id, "flaky", execution)
        return execution

    return str(await ctx.step.run("flaky", flaky, retry=policy))
