"""What only the Postgres backend has to prove: schemas, concurrent migration, LISTEN/NOTIFY,
round trips on the hot path, errors that name the URL, and recovery from a server restart.

The behaviour both backends share is in ``test_conformance.py``. Round trips are counted on the
wire by a small proxy that reads the protocol: every ``Sync`` (extended protocol) or ``Query``
(simple protocol) message a client sends is one round trip.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import pytest

from harness.postgres import PostgresServer
from stepwise.backends import migrations
from stepwise.backends.base import (
    ClaimedRun,
    FinishRun,
    NewRun,
    ReleaseRun,
    RunFilter,
    RunStatus,
    StepFinished,
    StepStarted,
    StepStatus,
    Watch,
    WorkerInfo,
)
from stepwise.backends.postgres.backend import PostgresBackend
from stepwise.errors import ConfigurationError, DatabaseUnavailable

pytestmark = pytest.mark.postgres

T = TypeVar("T")
WF = "wf"
LONG = 30.0
WAIT = 20.0
"""Upper bound for conditions that should hold within a fraction of a second."""


class Opener(Protocol):
    def __call__(
        self, url: str | None = None, schema: str = "stepwise"
    ) -> Awaitable[PostgresBackend]: ...


# ---- helpers -----------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def new_run(workflow: str = WF) -> NewRun:
    return NewRun(str(uuid.uuid4()), workflow, None, json.dumps({"n": 1}))


def finished(
    claimed: ClaimedRun, key: str, status: StepStatus = StepStatus.COMPLETED, attempts: int = 1
) -> StepFinished:
    at = now()
    if status is StepStatus.COMPLETED:
        output, error = '"ok"', None
    else:
        output, error = None, '{"type": "E", "message": "no"}'
    return StepFinished(
        claimed.lease_token, claimed.run.id, key, status, output, error, attempts, at, at
    )


async def started(backend: PostgresBackend, count: int = 1) -> list[ClaimedRun]:
    for _ in range(count):
        await backend.create_run(new_run())
    claimed = await backend.claim_runs("w1", [WF], count, LONG)
    assert len(claimed) == count
    return claimed


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = WAIT) -> T:
    """The first truthy result of ``probe``, polled until ``timeout``; ``DatabaseUnavailable``
    counts as "not yet" (the server may be coming back)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = await probe()
        except DatabaseUnavailable as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def changes_until(
    watch: Watch, wanted: Callable[[set[str] | None], bool]
) -> list[set[str] | None]:
    """Everything ``watch`` reports, up to and including the first report ``wanted`` accepts."""
    seen: list[set[str] | None] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        report = await watch.next(0.5)
        seen.append(report)
        if wanted(report):
            return seen
    raise AssertionError(f"the watch never reported what was wanted; it reported {seen}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def opened(postgres_url: str) -> AsyncIterator[Opener]:
    """Opens backends (on the test's database unless told otherwise), closes them afterwards."""
    backends: list[PostgresBackend] = []

    async def open_one(url: str | None = None, schema: str = "stepwise") -> PostgresBackend:
        backend = PostgresBackend(url or postgres_url, schema=schema)
        await backend.open()
        backends.append(backend)
        return backend

    yield open_one
    for backend in reversed(backends):
        await backend.close()


# ---- a protocol-aware proxy that counts round trips --------------------------------------------

_NEGOTIATION_CODES = {80877103, 80877104}  # SSLRequest, GSSENCRequest: startup comes after


@dataclass
class _Client:
    round_trips: int = 0
    listener: bool = False


class RoundTripCounter:
    """Forwards 127.0.0.1 connections to the server; counts each client's Sync/Query messages.
    The listener connection (it sends LISTEN) is left out: it only waits."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._clients: list[_Client] = []
        self._streams: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def round_trips(self) -> int:
        return sum(c.round_trips for c in self._clients if not c.listener)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop accepting and end every forwarded connection (both sides see EOF)."""
        if self._server is not None:
            self._server.close()
        for stream in self._streams:
            stream.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        self._streams |= {writer, up_writer}
        client = _Client()
        self._clients.append(client)
        try:
            await asyncio.gather(
                self._from_client(reader, up_writer, client),
                self._copy(up_reader, writer),
                return_exceptions=True,
            )
        finally:
            for stream in (writer, up_writer):
                stream.close()
                self._streams.discard(stream)

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    @staticmethod
    async def _from_client(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: _Client
    ) -> None:
        pending = b""
        in_startup = True
        while data := await reader.read(65536):
            writer.write(data)
            pending += data
            while True:
                if in_startup:
                    if len(pending) < 8:
                        break
                    length, code = struct.unpack("!ii", pending[:8])
                    if len(pending) < length:
                        break
                    pending = pending[length:]
                    in_startup = code in _NEGOTIATION_CODES
                    continue
                if len(pending) < 5:
                    break
                kind, (length,) = pending[:1], struct.unpack("!i", pending[1:5])
                if len(pending) < 1 + length:
                    break
                body, pending = pending[5 : 1 + length], pending[1 + length :]
                if kind == b"Q" and body.lstrip().upper().startswith(b"LISTEN"):
                    client.listener = True
                if kind in (b"S", b"Q"):
                    client.round_trips += 1
            await writer.drain()
        writer.close()


@pytest.fixture
async def counter(pg_server: PostgresServer) -> AsyncIterator[RoundTripCounter]:
    proxy = RoundTripCounter(pg_server.port)
    yield proxy
    await proxy.close()


async def round_trips(counter: RoundTripCounter, call: Awaitable[object]) -> int:
    before = counter.round_trips
    await call
    return counter.round_trips - before


# ---- schema name and migrations ----------------------------------------------------------------


@pytest.mark.parametrize("schema", ["", "Stepwise", "1st", "a-b", 'x"; DROP TABLE runs', "a" * 64])
def test_an_invalid_schema_name_is_a_configuration_error(schema: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresBackend("postgresql://u@127.0.0.1:1/db", schema=schema)
    assert repr(schema) in str(caught.value)


async def test_two_schemas_in_one_database_do_not_see_each_other(opened: Opener) -> None:
    # "user" is a reserved word: this works only if the name is quoted wherever it is used.
    alpha, other = await opened(schema="alpha"), await opened(schema="user")
    run, _ = await alpha.create_run(new_run())
    assert await other.get_run(run.id) is None
    assert await other.list_runs(RunFilter()) == []
    assert await other.claim_runs("w1", [WF], 10, LONG) == []
    assert [r.id for r in await alpha.list_runs(RunFilter())] == [run.id]


async def test_two_schemas_do_not_hear_each_other(opened: Opener) -> None:
    alpha, other = await opened(schema="alpha"), await opened(schema="user")
    [theirs] = await started(other)
    [ours] = await started(alpha)
    async with alpha.watch() as watch:
        await other.write([finished(theirs, "a")])
        await alpha.write([finished(ours, "a")])
        # One listener connection gets notifications in commit order: theirs would come first.
        seen = await changes_until(
            watch, lambda report: report is not None and ours.run.id in report
        )
    assert all(report is None or theirs.run.id not in report for report in seen)


async def test_many_backends_migrate_an_empty_database_at_once(
    opened: Opener, pg_server: PostgresServer, postgres_url: str
) -> None:
    schemas = ["stepwise", "other"] * 4
    await asyncio.gather(*(opened(schema=schema) for schema in schemas))
    database = postgres_url.rsplit("/", 1)[1]
    shipped = migrations.discover("stepwise.backends.postgres.migrations")
    for schema in set(schemas):
        rows = pg_server.psql(
            f"SELECT version, name FROM {schema}.stepwise_migrations ORDER BY version", database
        )
        assert rows.split() == [f"{m.version}|{m.name}" for m in shipped]


# ---- errors ------------------------------------------------------------------------------------


async def test_an_unreachable_server_is_named_with_the_password_hidden() -> None:
    url = f"postgresql://stepwise:s3cret@127.0.0.1:{free_port()}/nowhere"
    backend = PostgresBackend(url)
    with pytest.raises(DatabaseUnavailable) as caught:
        await backend.open()
    message = str(caught.value)
    assert "s3cret" not in message
    assert f"postgresql://stepwise:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in message
    assert caught.value.url == backend.display_url
    assert "s3cret" not in backend.display_url


async def test_a_missing_database_is_unavailable_not_a_crash(pg_server: PostgresServer) -> None:
    url = pg_server.url("no_such_database")
    with pytest.raises(DatabaseUnavailable) as caught:
        await PostgresBackend(url).open()
    assert "no_such_database" in str(caught.value)


# ---- the hot path: round trips -----------------------------------------------------------------


async def test_each_hot_path_call_is_one_round_trip(
    counter: RoundTripCounter, opened: Opener, pg_server: PostgresServer, postgres_url: str
) -> None:
    port = await counter.start()
    proxied = postgres_url.replace(f":{pg_server.port}/", f":{port}/")
    backend = await opened(proxied)
    await backend.register_worker(WorkerInfo("w1", "host", [WF], 100))

    async def cycle(runs: int) -> dict[str, int]:
        """Create, claim, heartbeat and finish ``runs`` runs; round trips of each call."""
        trips = {"create_run": 0}
        for _ in range(runs):
            trips["create_run"] += await round_trips(counter, backend.create_run(new_run()))
        claim = backend.claim_runs("w1", [WF], runs, LONG)
        before = counter.round_trips
        claimed = await claim
        trips["claim_runs"] = counter.round_trips - before
        assert len(claimed) == runs
        tokens = [c.lease_token for c in claimed]
        trips["heartbeat"] = await round_trips(counter, backend.heartbeat("w1", tokens, LONG))
        steps = [op for c in claimed for op in (finished(c, "a"), finished(c, "b"))]
        ends = [FinishRun(c.lease_token, c.run.id, RunStatus.SUCCEEDED, '"done"') for c in claimed]
        trips["write"] = await round_trips(counter, backend.write([*steps, *ends]))
        return trips

    await cycle(2)  # warm up: statements are prepared once per connection
    assert await cycle(1) == {"create_run": 1, "claim_runs": 1, "heartbeat": 1, "write": 1}
    assert await cycle(50) == {"create_run": 50, "claim_runs": 1, "heartbeat": 1, "write": 1}
    runs = await backend.list_runs(RunFilter(statuses=[RunStatus.SUCCEEDED], limit=1000))
    assert len(runs) == 53
    await backend.create_runs([new_run()])  # prepare the batch statement
    batch = backend.create_runs([new_run() for _ in range(500)])
    assert await round_trips(counter, batch) == 1


# ---- writes that only the set-based path could get wrong ---------------------------------------


async def test_several_ops_on_one_step_in_one_batch_apply_in_order(opened: Opener) -> None:
    backend = await opened()
    [claimed] = await started(backend)
    token, run_id = claimed.lease_token, claimed.run.id
    first = now()
    ops = [
        StepStarted(token, run_id, "a", 1, first),
        finished(claimed, "a", StepStatus.FAILED, attempts=1),
        StepStarted(token, run_id, "a", 2, now()),
        finished(claimed, "a", StepStatus.COMPLETED, attempts=2),
        StepStarted(token, run_id, "a", 3, now()),  # a completed step is final
        StepStarted(token, run_id, "b", 1, now()),
    ]
    assert (await backend.write(ops)).rejected == set()
    steps = {s.key: s for s in await backend.list_steps(run_id)}
    assert steps["a"].status is StepStatus.COMPLETED
    assert steps["a"].attempts == 2
    assert steps["a"].output == '"ok"'
    assert steps["a"].started_at == first
    assert steps["b"].status is StepStatus.RUNNING
    assert [s.key for s in await backend.list_steps(run_id)] == ["a", "b"]


async def test_payloads_come_back_byte_for_byte(opened: Opener) -> None:
    backend = await opened()
    [claimed] = await started(backend)
    output = '{"z": 1,  "a": [1.50, 2e3], "u": "\\u00e9\\u0000"}'
    step = StepFinished(
        claimed.lease_token,
        claimed.run.id,
        "a",
        StepStatus.COMPLETED,
        output,
        None,
        1,
        now(),
        now(),
    )
    assert (
        await backend.write([step, ReleaseRun(claimed.lease_token, claimed.run.id)])
    ).rejected == set()
    [again] = await backend.claim_runs("w1", [WF], 1, LONG)
    assert again.steps[0].output == output
    assert (await backend.list_steps(claimed.run.id))[0].output == output
    await backend.write([FinishRun(again.lease_token, again.run.id, RunStatus.SUCCEEDED, output)])
    run = await backend.get_run(claimed.run.id)
    assert run is not None
    assert run.output == output


async def test_batches_heartbeats_and_cancels_in_any_order_never_deadlock(opened: Opener) -> None:
    writers = [await opened() for _ in range(3)]
    claimed = await started(writers[0], 30)
    rng = random.Random(7)

    def shuffled() -> list[ClaimedRun]:
        return rng.sample(claimed, len(claimed))

    calls: list[Awaitable[object]] = []
    for i in range(12):
        backend = writers[i % len(writers)]
        calls.append(backend.write([finished(c, f"s{i}") for c in shuffled()]))
        calls.append(backend.heartbeat("w1", [c.lease_token for c in shuffled()], LONG))
    calls += [writers[0].cancel_run(c.run.id) for c in claimed[:5]]
    await asyncio.gather(*calls)
    for c in claimed[5:]:
        assert len(await writers[1].list_steps(c.run.id)) == 12
    for c in claimed[:5]:
        run = await writers[1].get_run(c.run.id)
        assert run is not None
        assert run.status is RunStatus.CANCELED


# ---- LISTEN/NOTIFY -----------------------------------------------------------------------------


async def test_wait_for_work_wakes_promptly_for_a_run_made_elsewhere(opened: Opener) -> None:
    waiter, starter = await opened(), await opened()
    await waiter.wait_for_work(0.0)
    waiting = asyncio.create_task(waiter.wait_for_work(60.0))
    await asyncio.sleep(0)
    begun = time.monotonic()
    await starter.create_run(new_run())
    await asyncio.wait_for(waiting, WAIT)
    assert time.monotonic() - begun < 5.0


async def test_watch_sees_a_step_written_elsewhere(opened: Opener) -> None:
    watcher, worker = await opened(), await opened()
    [claimed] = await started(worker)
    async with watcher.watch() as watch:
        assert await watch.next(0.0) == set()
        await worker.write([finished(claimed, "a")])
        assert await asyncio.wait_for(watch.next(60.0), WAIT) == {claimed.run.id}


async def test_one_batch_over_many_runs_names_every_run_to_watchers(opened: Opener) -> None:
    # Notifications carry many run ids each (and split before Postgres's payload limit).
    watcher, worker = await opened(), await opened()
    claimed = await started(worker, count=400)
    async with watcher.watch() as watch:
        assert await watch.next(0.0) == set()
        await worker.write([finished(c, "a") for c in claimed])
        wanted = {c.run.id for c in claimed}
        seen: set[str] = set()

        def all_named(report: set[str] | None) -> bool:
            seen.update(report or set())
            return seen >= wanted

        await changes_until(watch, all_named)
    assert seen == wanted


# ---- the server goes away ----------------------------------------------------------------------


async def test_while_the_server_is_down_calls_fail_clearly_and_waits_poll(
    opened: Opener, pg_server: PostgresServer
) -> None:
    backend = await opened()
    run, _ = await backend.create_run(new_run())
    async with backend.watch() as watch:
        await asyncio.to_thread(pg_server.stop)
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                await backend.get_run(run.id)
            assert backend.display_url in str(caught.value)
            begun = time.monotonic()
            await backend.wait_for_work(0.3)
            assert await watch.next(0.3) is None
            assert time.monotonic() - begun < 5.0
        finally:
            await asyncio.to_thread(pg_server.start)
        assert await eventually(lambda: backend.get_run(run.id)) == run


async def test_after_a_restart_the_same_instance_works_and_listens_again(
    opened: Opener, pg_server: PostgresServer
) -> None:
    backend, other = await opened(), await opened()
    # Fill the pool, so every pooled connection dies in the restart.
    await asyncio.gather(*(backend.list_runs(RunFilter()) for _ in range(20)))
    async with backend.watch() as watch:
        await backend.wait_for_work(0.0)
        await asyncio.to_thread(pg_server.restart)
        # The listener reconnects and wakes wait_for_work (work may have come meanwhile)...
        begun = time.monotonic()
        await backend.wait_for_work(WAIT)
        assert time.monotonic() - begun < WAIT
        # ...and every open watch asks, once, for a full re-read.
        assert await watch.next(0.0) is None
        assert await watch.next(0.0) == set()
        # The pool replaced its dead connections.
        results = await eventually(
            lambda: asyncio.gather(*(backend.list_runs(RunFilter()) for _ in range(20)))
        )
        assert results == [[]] * 20
        # The listener LISTENs again: for work and for run changes.
        waiting = asyncio.create_task(backend.wait_for_work(60.0))
        await asyncio.sleep(0)
        [claimed] = await started(other)
        await asyncio.wait_for(waiting, WAIT)
        await other.write([finished(claimed, "a")])
        assert await asyncio.wait_for(watch.next(60.0), WAIT) == {claimed.run.id}
