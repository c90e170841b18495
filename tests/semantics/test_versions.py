"""Versions side by side, on both backends: several definitions of one workflow served by the
same or different workers, each run executed by the version it is pinned to, a start without a
version pinned to the newest that a live worker serves, a version nobody serves waiting
visibly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from harness.workers import async_wait_until
from stepwise import Client, Registry, RunStatus, Worker, workflow
from stepwise.backends.base import WORKER_LIVENESS_SECONDS
from stepwise.client.served import SERVED_VERSIONS_TTL
from stepwise.core import versions
from stepwise.errors import DefinitionError, UnknownWorkflow
from tests.conftest import Engine

NAME = "versioned-greet"
TIMEOUT = 30.0


def definitions(registry: Registry, *tags: str) -> None:
    """One definition of ``NAME`` per version in ``tags``; each says which one ran."""
    for tag in tags:
        workflow(NAME, version=tag, registry=registry)(_greet(tag))


def _greet(tag: str) -> Callable[[Any], Coroutine[Any, Any, str]]:
    async def greet(ctx: Any) -> str:
        return f"{tag} ran run pinned to {ctx.version}"

    return greet


@asynccontextmanager
async def serving(engine: Engine, registry: Registry) -> AsyncIterator[Worker]:
    """A worker of ``registry``, registered (live) when the block starts."""
    worker = Worker(engine.client, registry, poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await async_wait_until(lambda: _ready(worker), TIMEOUT, "the worker is claiming")
        yield worker
    finally:
        stop.set()
        await task


async def _ready(worker: Worker) -> bool:
    return worker.ready


def test_newest_is_pep_440_order_then_text_then_unversioned() -> None:
    found = ["1.9", "1.10", "2.0rc1", "2.0", None, "blue", "green", "v3"]
    assert versions.ordered(found) == ["v3", "2.0", "2.0rc1", "1.10", "1.9", "green", "blue", None]
    assert versions.newest(["1.9", "1.10"]) == "1.10"
    assert versions.newest([]) is None


def test_a_registry_holds_several_versions_of_one_name() -> None:
    registry = Registry()
    definitions(registry, "1.9", "1.10")
    assert registry.names() == [NAME]
    assert registry.versions() == {NAME: ["1.10", "1.9"]}
    assert registry.get(NAME).version == "1.10"
    assert registry.get(NAME, "1.9").version == "1.9"
    with pytest.raises(UnknownWorkflow, match=r"unknown version '3' of workflow .*1\.10, 1\.9"):
        registry.get(NAME, "3")


def test_the_newest_version_stands_whatever_order_versions_are_registered_in() -> None:
    registry = Registry()
    definitions(registry, "1.10")
    assert registry.get(NAME).version == "1.10"
    definitions(registry, "1.9", "blue")
    assert registry.get(NAME).version == "1.10"
    definitions(registry, "2.0")
    assert registry.get(NAME).version == "2.0"

    @workflow(NAME, version="1.9", registry=Registry())
    async def other(ctx: Any) -> None:
        return None

    with pytest.raises(DefinitionError, match=r"version '1\.9'"):
        registry.add(other)


async def test_one_worker_serves_two_versions_and_runs_each_run_with_its_own(
    engine: Engine,
) -> None:
    registry = Registry()
    definitions(registry, "1", "2")
    async with serving(engine, registry):
        one = await engine.client.start(NAME, version="1")
        two = await engine.client.start(NAME, version="2")
        newest = await engine.client.start(NAME)
        assert newest.version == "2"
        assert await engine.client.wait(one.id, timeout=TIMEOUT) == "1 ran run pinned to 1"
        assert await engine.client.wait(two.id, timeout=TIMEOUT) == "2 ran run pinned to 2"
        assert await engine.client.wait(newest.id, timeout=TIMEOUT) == "2 ran run pinned to 2"


async def test_a_start_without_a_version_takes_the_newest_a_live_worker_serves(
    engine: Engine, backend_url: str
) -> None:
    old, new = Registry(), Registry()
    definitions(old, "1.9")
    definitions(new, "1.10")

    async def started(version: str) -> str | None:
        run = await engine.client.start(NAME)
        return run.id if run.version == version else None

    async with (
        serving(engine, old),
        Client.connect(backend_url, served_versions_ttl=3600) as keeping,
    ):
        assert await started("1.9")
        assert (await keeping.start(NAME)).version == "1.9"
        async with serving(engine, new):
            # A client keeps the versions it read for served_versions_ttl seconds: its next
            # start costs no read and stays on 1.9; a client with the default switches soon.
            assert (await keeping.start(NAME)).version == "1.9"
            run_id = await async_wait_until(
                lambda: started("1.10"), SERVED_VERSIONS_TTL + TIMEOUT, "a start takes 1.10",
                interval=0.5,
            )  # fmt: skip
            assert await engine.client.wait(run_id, timeout=TIMEOUT) == (
                "1.10 ran run pinned to 1.10"
            )
        # The 1.10 worker is gone (unregistered): the newest live one is 1.9 again.
        await async_wait_until(
            lambda: started("1.9"), SERVED_VERSIONS_TTL + TIMEOUT, "a start takes 1.9 again",
            interval=0.5,
        )  # fmt: skip


async def test_concurrent_starts_share_one_read_of_the_served_versions(engine: Engine) -> None:
    """A start without a version costs no round trip of its own: 50 starts at once read the
    versions live workers serve once, and a client with ``served_versions_ttl=0`` per start."""
    registry = Registry()
    definitions(registry, "1", "2")
    backend = engine.client.backend
    read = backend.served_versions
    reads = 0

    async def counted(workflow: str, within_seconds: float) -> list[str]:
        nonlocal reads
        reads += 1
        return await read(workflow, within_seconds)

    backend.served_versions = counted  # type: ignore[method-assign]
    async with serving(engine, registry):
        started = await asyncio.gather(*(engine.client.start(NAME) for _ in range(50)))
        assert {run.version for run in started} == {"2"}
        assert reads == 1
        uncached = Client(backend, served_versions_ttl=0)
        for _ in range(3):
            assert (await uncached.start(NAME)).version == "2"
        assert reads == 4


async def test_a_run_started_while_no_worker_serves_a_version_is_pinned_by_its_claim(
    engine: Engine,
) -> None:
    run = await engine.client.start(NAME)
    assert run.version is None
    registry = Registry()
    definitions(registry, "1", "2")
    async with serving(engine, registry):
        assert await engine.client.wait(run.id, timeout=TIMEOUT) == "2 ran run pinned to 2"
    assert (await engine.client.get(run.id)).version == "2"


async def test_a_run_of_a_version_no_worker_serves_waits_visibly(engine: Engine) -> None:
    registry = Registry()
    definitions(registry, "1")
    async with serving(engine, registry):
        run = await engine.client.start(NAME, version="2")
        assert await engine.client.waiting_reason(run) == (
            f"no live worker serves version '2' of workflow '{NAME}'"
        )
        served = await engine.client.backend.served_versions(NAME, WORKER_LIVENESS_SECONDS)
        assert served == ["1"]
        assert (await engine.client.get(run.id)).status is RunStatus.PENDING
        later = Registry()
        definitions(later, "2")
        async with serving(engine, later):
            assert await engine.client.waiting_reason(run) is None
            assert await engine.client.wait(run.id, timeout=TIMEOUT) == "2 ran run pinned to 2"
