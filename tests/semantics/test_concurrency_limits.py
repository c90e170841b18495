"""Concurrency limits, held by the claim itself on both backends.

``@workflow(name, concurrency=N, concurrency_key=FIELD)``: a worker registers the limit; every
claim (by any worker) takes a due run only while fewer than N runs of its group are RUNNING.
These tests drive the backend directly, as separate worker processes would share it; the
real-process chaos test is ``tests/robustness/test_concurrency_chaos.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stepwise import Client, RunStatus, Worker, workflow
from stepwise.backends import open_backend
from stepwise.backends.base import (
    Backend,
    ClaimedRun,
    ConcurrencyLimit,
    FinishRun,
    NewRun,
    RunFilter,
    WorkerInfo,
)
from stepwise.client.client import SLOT_WAIT
from stepwise.core.registry import Registry
from stepwise.errors import DefinitionError
from stepwise.operator import status
from stepwise.operator.models import Phase

WF = "limited"
FREE = "free"
LONG = 30.0
SHORT = 0.3

Opener = Callable[[], Awaitable[Backend]]


@pytest.fixture
async def open_one(backend_url: str) -> AsyncIterator[Opener]:
    opened: list[Backend] = []

    async def opener() -> Backend:
        backend = open_backend(backend_url)
        await backend.open()
        opened.append(backend)
        return backend

    yield opener
    for backend in reversed(opened):
        await backend.close()


async def register(
    backend: Backend, worker: str, limits: dict[str, ConcurrencyLimit], workflows: list[str]
) -> None:
    await backend.register_worker(WorkerInfo(worker, "host", workflows, 100, limits))


async def create(backend: Backend, workflow: str = WF, **input_: Any) -> str:
    run_id = str(uuid.uuid4())
    await backend.create_run(NewRun(run_id, workflow, None, json.dumps(input_)))
    return run_id


async def finish(backend: Backend, claimed: ClaimedRun) -> None:
    result = await backend.write(
        [FinishRun(claimed.lease_token, claimed.run.id, RunStatus.SUCCEEDED)]
    )
    assert not result.rejected


async def running(backend: Backend, workflow: str = WF) -> int:
    return len(await backend.list_runs(RunFilter(workflow, [RunStatus.RUNNING], 1000)))


async def test_a_workflow_wide_limit_caps_running_runs(open_one: Opener) -> None:
    backend = await open_one()
    await register(backend, "w1", {WF: ConcurrencyLimit(2)}, [WF])
    ids = [await create(backend) for _ in range(5)]

    first = await backend.claim_runs("w1", [WF], 10, LONG)
    assert [c.run.id for c in first] == ids[:2]  # the oldest, up to the limit
    assert await backend.claim_runs("w1", [WF], 10, LONG) == []

    await finish(backend, first[0])
    again = await backend.claim_runs("w1", [WF], 10, LONG)
    assert [c.run.id for c in again] == [ids[2]]
    assert await running(backend) == 2


async def test_a_keyed_limit_caps_each_key(open_one: Opener) -> None:
    backend = await open_one()
    await register(backend, "w1", {WF: ConcurrencyLimit(1, "customer")}, [WF])
    a1 = await create(backend, customer="a")
    a2 = await create(backend, customer="a")
    b1 = await create(backend, customer="b")
    n1 = await create(backend, customer=7)

    claimed = await backend.claim_runs("w1", [WF], 10, LONG)
    assert {c.run.id for c in claimed} == {a1, b1, n1}
    assert await backend.claim_runs("w1", [WF], 10, LONG) == []
    await finish(backend, next(c for c in claimed if c.run.id == a1))
    assert [c.run.id for c in await backend.claim_runs("w1", [WF], 10, LONG)] == [a2]


async def test_runs_of_a_full_group_do_not_hide_other_runs(open_one: Opener) -> None:
    """A backlog of a capped workflow, older than everything else, never starves the rest."""
    backend = await open_one()
    await register(backend, "w1", {WF: ConcurrencyLimit(1)}, [WF, FREE])
    for _ in range(6):
        await create(backend)
    assert len(await backend.claim_runs("w1", [WF, FREE], 1, LONG)) == 1
    free = await create(backend, FREE)
    claimed = await backend.claim_runs("w1", [WF, FREE], 2, LONG)
    assert [c.run.id for c in claimed] == [free]


async def test_the_slot_of_a_dead_holder_goes_to_its_own_run_not_another(
    open_one: Opener,
) -> None:
    """Its lease expired, but its holder may still run: only a takeover of that very run
    (which inherits its slot) is claimable, never a waiting run beside it."""
    backend = await open_one()
    await register(backend, "w1", {WF: ConcurrencyLimit(1)}, [WF])
    await register(backend, "w2", {WF: ConcurrencyLimit(1)}, [WF])
    held = await create(backend)
    waiting = await create(backend)
    [dead] = await backend.claim_runs("w1", [WF], 10, SHORT)
    assert dead.run.id == held
    assert await backend.claim_runs("w2", [WF], 10, LONG) == []

    deadline = time.monotonic() + 15
    taken: list[ClaimedRun] = []
    while not taken:
        assert time.monotonic() < deadline, "the expired lease was never taken over"
        taken = await backend.claim_runs("w2", [WF], 10, LONG)
        await asyncio.sleep(0.05)
    assert [c.run.id for c in taken] == [held]
    assert await running(backend) == 1
    await finish(backend, taken[0])
    assert [c.run.id for c in await backend.claim_runs("w2", [WF], 10, LONG)] == [waiting]


async def test_the_strictest_live_declaration_wins(open_one: Opener) -> None:
    backend = await open_one()
    await register(backend, "loose", {WF: ConcurrencyLimit(3)}, [WF])
    await register(backend, "strict", {WF: ConcurrencyLimit(1, "customer")}, [WF])
    await register(backend, "unlimited", {}, [WF])
    await register(backend, "strictest", {WF: ConcurrencyLimit(1)}, [WF])
    for customer in "abc":
        await create(backend, customer=customer)
    # Whoever claims: one run at a time, workflow-wide (at equal N the unkeyed cap is stricter).
    assert len(await backend.claim_runs("unlimited", [WF], 10, LONG)) == 1
    assert await backend.claim_runs("loose", [WF], 10, LONG) == []

    await backend.unregister_worker("strictest")
    assert len(await backend.claim_runs("loose", [WF], 10, LONG)) == 2  # now 1 per customer


async def test_workflows_without_a_limit_are_not_limited(open_one: Opener) -> None:
    backend = await open_one()
    await register(backend, "w1", {WF: ConcurrencyLimit(1)}, [WF, FREE])
    for _ in range(5):
        await create(backend, FREE)
    assert len(await backend.claim_runs("w1", [FREE], 10, LONG)) == 5


@pytest.mark.timeout(300)
async def test_concurrent_claimers_never_exceed_the_limit(open_one: Opener) -> None:
    """Many claimers at once, each on its own connection, over and over: the cap holds (on
    Postgres this is the per-group lock and the fresh count; on SQLite the write lock)."""
    claimers = [await open_one() for _ in range(6)]
    setup = claimers[0]
    for n, backend in enumerate(claimers):
        await register(backend, f"w{n}", {WF: ConcurrencyLimit(2, "k")}, [WF])
    rounds = 150
    for round_ in range(rounds):
        for _ in range(8):
            await create(setup, k=round_ % 3)
        results = await asyncio.gather(
            *(b.claim_runs(f"w{n}", [WF], 3, LONG) for n, b in enumerate(claimers))
        )
        claimed = [c for batch in results for c in batch]
        per_key: dict[str, int] = {}
        for c in claimed:
            key = json.loads(c.run.input)["k"]
            per_key[key] = per_key.get(key, 0) + 1
        assert all(count <= 2 for count in per_key.values()), (round_, per_key)
        assert claimed, f"round {round_}: nothing claimed"
        for c in claimed:
            await finish(setup, c)
        # Drain: whatever is left of this round is claimed and finished before the next.
        while left := await setup.claim_runs("w0", [WF], 100, LONG):
            assert len(left) <= 2
            for c in left:
                await finish(setup, c)


def test_the_limit_is_declared_on_the_workflow() -> None:
    registry = Registry()

    @workflow("capped", concurrency=3, concurrency_key="customer", registry=registry)
    async def capped(ctx: Any) -> None:
        return None

    @workflow("open", registry=registry)
    async def open_(ctx: Any) -> None:
        return None

    assert registry.limits() == {"capped": ConcurrencyLimit(3, "customer")}


@pytest.mark.parametrize(
    ("concurrency", "key", "message"),
    [
        (0, None, "concurrency"),
        (True, None, "concurrency"),
        (None, "customer", "concurrency_key needs concurrency"),
        (2, "customer.id", "concurrency_key must name a top-level field"),
        (2, "", "concurrency_key must name a top-level field"),
    ],
)
def test_a_bad_limit_is_refused_at_definition(concurrency: Any, key: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        workflow("bad", concurrency=concurrency, concurrency_key=key, registry=Registry())


async def test_a_run_waiting_for_a_slot_says_so(backend_url: str, open_one: Opener) -> None:
    backend = await open_one()
    await register(backend, "w1", {WF: ConcurrencyLimit(1, "customer")}, [WF])
    async with Client.connect(backend_url) as client:
        first = await client.start(WF, {"customer": "acme"})
        second = await client.start(WF, {"customer": "acme"})
        other = await client.start(WF, {"customer": "globex"})
        assert await client.waiting_reason(second) is None  # nothing runs yet
        claimed = await backend.claim_runs("w1", [WF], 1, LONG)
        assert [c.run.id for c in claimed] == [first.id]

        waiting = await client.get(second.id)
        assert waiting.status is RunStatus.PENDING
        assert await client.waiting_reason(waiting) == (
            f"waiting for a concurrency slot: 1 of 1 runs of workflow {WF!r} with "
            "customer='acme' are running"
        )
        assert await client.waiting_reason(await client.get(other.id)) is None


def test_the_example_never_overlaps_one_customers_charges() -> None:
    """``examples/concurrency_limits.py``, run as its docstring says."""
    example = Path(__file__).resolve().parents[2] / "examples" / "concurrency_limits.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=True
    )
    windows: dict[str, list[tuple[float, float]]] = {}
    for line in done.stdout.splitlines():
        customer, _, _, began, _, ended = line.split()
        windows.setdefault(customer, []).append((float(began[:-1]), float(ended[:-1])))
    assert sorted(windows) == ["acme", "globex"]
    assert sum(map(len, windows.values())) == 8
    for customer, spans in windows.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two charges of {customer} overlapped: {spans}"


def test_a_run_waiting_for_a_slot_has_a_worker_on_kubernetes() -> None:
    """The WorkflowRun's WorkerAvailable condition: a worker serves it; the run queues."""
    reason = f"{SLOT_WAIT}: 2 of 2 runs of workflow 'x' are running"
    found = status.conditions(
        Phase.PENDING, None, reason, claimed=False, previous=[], generation=1, now=datetime.now(UTC)
    )
    available = next(c for c in found if c.type == status.WORKER_AVAILABLE)
    assert (available.status, available.reason, available.message) == (
        "True",
        "ConcurrencyLimit",
        reason,
    )


@pytest.mark.timeout(180)
async def test_a_finished_run_hands_its_slot_on_without_waiting_for_a_poll(
    backend_url: str,
) -> None:
    """The worker whose limited run ended claims again at once: nothing else announces the
    freed slot (the poll interval here is far longer than the test may take)."""
    registry = Registry()

    @workflow("one-at-a-time", concurrency=1, registry=registry)
    async def one_at_a_time(ctx: Any) -> int:
        result: int = await ctx.step.run("double", lambda n: 2 * n, ctx.input)
        return result

    async with Client.connect(backend_url) as client:
        runs = [await client.start("one-at-a-time", n) for n in range(3)]
        stop = asyncio.Event()
        serving = asyncio.create_task(Worker(client, registry, poll_interval=600).run(stop))
        try:
            assert [await client.wait(run.id, timeout=60) for run in runs] == [0, 2, 4]
        finally:
            stop.set()
            await serving
