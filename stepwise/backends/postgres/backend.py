"""The server backend: runs and steps in a Postgres schema, reached through an asyncpg pool.

Why it looks like this:

* The hot path is one round trip per call. A ``write`` batch is ONE statement: the plpgsql
  function ``stepwise_write`` (migrations 0001 and 0013) locks the runs, fences every op by its
  lease token, applies the ops set-based (one function per kind of write) and NOTIFYs, in one
  transaction. A claim is ONE statement that locks (``SKIP LOCKED``), leases and returns the
  runs with their steps. The Python side only serialises ops once (``json.dumps`` of small
  dicts). The pool's reset query on release is skipped: no call leaves session state behind
  (see ``_reset``).
* The schema name is validated, quoted and set as every connection's ``search_path``, so all
  SQL (in ``queries.sql`` and the migrations) uses unqualified names and two schemas in one
  database never see each other's runs or notifications.
* Anything that says "the server is away" (refused connection, admin shutdown during a
  restart, a connection dropped mid-query) becomes ``DatabaseUnavailable`` naming the URL with
  its password hidden; callers retry, and the pool replaces dead connections on next acquire.
* LISTEN/NOTIFY lives in ``notify.Listener``: one connection per backend instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from stepwise.backends import base, encoding, migrations
from stepwise.backends.postgres import notify
from stepwise.backends.sqlfiles import load_queries
from stepwise.backends.urls import hide_password
from stepwise.errors import ConfigurationError, DatabaseUnavailable, RunFinished, RunNotFound

_QUERIES = load_queries("stepwise.backends.postgres")
_MIGRATIONS_PACKAGE = "stepwise.backends.postgres.migrations"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

POOL_SIZE = 10
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
CLOSE_TIMEOUT = 10.0
_RACE_RETRIES = 5

_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was dropped
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, restart, cannot connect
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.InterfaceError,  # "connection is closed" on a connection that died under us
    # A pooled connection the server terminated between two calls can fail the next call with
    # "cannot switch to state N; another operation is in progress" (MagicStack/asyncpg#1069).
    asyncpg.InternalClientError,
)
"""Errors meaning the server is (for now) unreachable: the caller may retry."""


def _quoted_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use lowercase letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return f'"{schema}"'


def _uuid(text: str) -> uuid.UUID | None:
    """``text`` as a UUID, or None when it cannot be one (then it names nothing stored)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


_READ = encoding.Reader(time=None)
_RETRYABLE = (base.RunStatus.FAILED.value, base.RunStatus.CANCELED.value)


def _op_document(n: int, op: base.WriteOp) -> dict[str, Any]:
    """``op`` as the JSON object ``stepwise_write`` reads into its ``write_op`` type: the one
    encoding of ops, numbered, its run id canonical (or null: then it names no stored run)."""
    doc = encoding.document(op)
    doc["n"] = n
    doc["run_id"] = _canonical_uuid(op.run_id)
    return doc


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical_uuid(text: str) -> str | None:
    """``text`` as a canonical UUID, or None when it cannot be one. The ids the engine writes
    are canonical already (read from the database): the match spares a parse per op."""
    if _CANONICAL_UUID.fullmatch(text):
        return text
    key = _uuid(text)
    return None if key is None else str(key)


def _run_values(new: base.NewRun) -> tuple[Any, ...]:
    """A new run as create_run's parameters (create_runs takes them as columns)."""
    return (
        new.id,
        new.workflow,
        new.version,
        new.input,
        new.idempotency_key,
        new.deadline_at,
        new.available_at,
        new.scheduled_at,
        new.traceparent,
    )


def _claimed_run(row: Any) -> base.ClaimedRun:
    return _READ.claimed(row, [_READ.step(step) for step in row["steps"]])


async def _reset(conn: Any) -> None:
    """Pool release hook. asyncpg's default resets every released connection with one more
    round trip (unlisten, unlock, RESET ALL); our calls leave no session state (advisory locks
    are transaction-scoped, LISTEN is on the listener's own connection), so only a transaction
    left open by a cancelled call needs undoing."""
    if conn.is_in_transaction():
        await conn.reset()


class PostgresBackend:
    """``Backend`` on a Postgres schema; see the module docstring for the design."""

    def __init__(self, url: str, *, schema: str = "stepwise", create: bool = True) -> None:
        self.display_url = hide_password(url)
        self.schema = schema
        self._create = create
        self._quoted_schema = _quoted_schema(schema)
        self._url = url
        self._pool: asyncpg.Pool | None = None
        self._listener: notify.Listener | None = None

    # ---- plumbing ----

    @contextlib.contextmanager
    def _reachable(self, errors: tuple[type[BaseException], ...] = _UNAVAILABLE) -> Iterator[None]:
        try:
            yield
        except errors as exc:
            raise DatabaseUnavailable(self.display_url, str(exc) or type(exc).__name__) from exc

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        pool = base.opened(self._pool, self.display_url)
        with self._reachable():
            async with pool.acquire() as conn:
                try:
                    yield conn
                except _UNAVAILABLE:
                    # Never hand a connection in an unknown state back: the pool opens a new
                    # one on the next acquire.
                    conn.terminate()
                    raise

    async def _fetch(self, name: str, *args: object) -> list[Any]:
        async with self._connection() as conn:
            rows: list[Any] = await conn.fetch(_QUERIES[name], *args)
            return rows

    async def _fetchval(self, name: str, *args: object) -> Any:
        async with self._connection() as conn:
            return await conn.fetchval(_QUERIES[name], *args)

    async def _execute(self, name: str, *args: object) -> None:
        async with self._connection() as conn:
            await conn.execute(_QUERIES[name], *args)

    def _connect_options(self) -> dict[str, Any]:
        return {
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": COMMAND_TIMEOUT,
            "server_settings": {
                "search_path": self._quoted_schema,
                "application_name": "stepwise",
            },
        }

    # ---- lifecycle ----

    async def open(self) -> None:
        try:
            # Any refusal while connecting (wrong password, no such database) also means
            # "cannot reach the database at URL", not a bug to report with a traceback.
            with self._reachable((*_UNAVAILABLE, asyncpg.PostgresError)):
                self._pool = await asyncpg.create_pool(
                    self._url,
                    min_size=1,
                    max_size=POOL_SIZE,
                    reset=_reset,
                    **self._connect_options(),
                )
            async with self._connection() as conn:
                await self._migrate(conn)
                row = await conn.fetchrow(_QUERIES["channels"])
            channels = notify.Channels(work=row["work"], runs=row["runs"])
            self._listener = notify.Listener(
                lambda: asyncpg.connect(self._url, **self._connect_options()),
                channels,
                _QUERIES["ping"],
            )
            with self._reachable():
                await self._listener.start()
        except BaseException:
            await self.close()
            raise

    async def _migrate(self, conn: Any) -> None:
        """Create the schema and apply pending migrations, all in one transaction under an
        advisory lock: backends that start together migrate one after the other."""
        async with conn.transaction():
            await conn.execute(_QUERIES["lock_migrations"], self.schema)
            if not self._create and not await conn.fetchval(_QUERIES["schema_exists"]):
                raise ConfigurationError(
                    f"the database at {self.display_url} has no stepwise schema "
                    f"{self.schema!r}; this command does not create one"
                )
            await conn.execute(_QUERIES["create_schema"].replace("{schema}", self._quoted_schema))
            await conn.execute(_QUERIES["create_migrations_table"])
            applied = {row["version"] for row in await conn.fetch(_QUERIES["applied_migrations"])}
            for migration in migrations.pending(_MIGRATIONS_PACKAGE, applied, self.display_url):
                await conn.execute(migration.sql)
                await conn.execute(_QUERIES["record_migration"], migration.version, migration.name)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await pool.close()
            except _UNAVAILABLE:  # TimeoutError included
                pool.terminate()

    # ---- client side ----

    async def create_run(self, new: base.NewRun) -> tuple[base.RunRecord, bool]:
        for _ in range(_RACE_RETRIES):
            rows = await self._fetch("create_run", *_run_values(new))
            if rows:
                return _READ.run(rows[0]), rows[0]["created"]
        raise RuntimeError(f"could not create nor find run {new.id} (idempotency key race)")

    async def create_runs(self, new: Sequence[base.NewRun]) -> list[tuple[base.RunRecord, bool]]:
        done: dict[int, tuple[base.RunRecord, bool]] = {}
        for _ in range(_RACE_RETRIES):
            todo = [i for i in range(len(new)) if i not in done]
            if not todo:
                break
            columns = zip(*(_run_values(new[i]) for i in todo), strict=True)
            rows = await self._fetch("create_runs", *(list(column) for column in columns))
            for row in rows:
                done[todo[row["ord"] - 1]] = _READ.run(row), row["created"]
        if len(done) < len(new):
            raise RuntimeError("could not create nor find every run (idempotency key race)")
        return [done[i] for i in range(len(new))]

    async def get_run(self, run_id: str) -> base.RunRecord | None:
        key = _uuid(run_id)
        if key is None:
            return None
        rows = await self._fetch("get_run", key)
        return _READ.run(rows[0]) if rows else None

    async def list_runs(self, query: base.RunFilter) -> list[base.RunRecord]:
        statuses = [status.value for status in query.statuses]
        after = query.after
        parent = None if query.parent_id is None else _uuid(query.parent_id)
        if query.parent_id is not None and parent is None:
            return []  # no run has that id, so none has it as its parent
        rows = await self._fetch(
            "list_runs",
            query.workflow,
            statuses,
            query.limit,
            query.since,
            query.until,
            None if after is None else after.created_at,
            None if after is None else _uuid(after.id),
            parent,
        )
        return [_READ.run(row) for row in rows]

    async def count_runs(self, query: base.RunFilter) -> int:
        statuses = [status.value for status in query.statuses]
        count: int = await self._fetchval(
            "count_runs", query.workflow, statuses, query.since, query.until
        )
        return count

    async def active_runs(self, known: Sequence[str]) -> list[base.ActiveRuns]:
        rows = await self._fetch("active_runs", list(known))
        return [base.ActiveRuns(*row) for row in rows]

    async def run_ids_between(self, low: str, high: str, limit: int) -> list[str]:
        rows = await self._fetch("run_ids_between", low, high, limit)
        return [row["id"] for row in rows]

    async def list_steps(
        self, run_id: str, *, after_seq: int | None = None, limit: int | None = None
    ) -> list[base.StepRecord]:
        key = _uuid(run_id)
        if key is None:
            return []
        rows = await self._fetch("list_steps", key, after_seq, limit)
        return [_READ.step(row) for row in rows]

    async def cancel_run(self, run_id: str) -> base.RunRecord | None:
        key = _uuid(run_id)
        if key is None:
            return None
        for _ in range(_RACE_RETRIES):
            async with self._connection() as conn, conn.transaction():
                await conn.execute(_QUERIES["lock_descendants"], key)
                rows = await conn.fetch(_QUERIES["cancel_run"], key)
                if rows and rows[0]["changed"]:
                    await conn.execute(_QUERIES["cancel_steps"], [key])
            if not rows:
                return None
            record = _READ.run(rows[0])
            if rows[0]["changed"] or record.status.finished:
                return record
        raise RuntimeError(f"could not cancel run {run_id}: it kept changing")

    async def expire_runs(self) -> int:
        async with self._connection() as conn, conn.transaction():
            expired = [row["id"] for row in await conn.fetch(_QUERIES["expire_runs"])]
            if expired:
                await conn.execute(_QUERIES["cancel_steps"], expired)
        return len(expired)

    def watch(self) -> base.Watch:
        return base.opened(self._listener, self.display_url).watch()

    async def resume_run(
        self, run_id: str, deadline_at: datetime | None
    ) -> tuple[base.RunRecord, bool] | None:
        key = _uuid(run_id)
        if key is None:
            return None
        async with self._connection() as conn, conn.transaction():
            status = await conn.fetchval(_QUERIES["lock_run"], key)
            if status not in _RETRYABLE:
                row = await conn.fetchrow(_QUERIES["get_run"], key) if status else None
                return None if row is None else (_READ.run(row), False)
            await conn.execute(_QUERIES["record_attempt"], key)
            await conn.execute(_QUERIES["erase_unfinished_steps"], key)
            row = await conn.fetchrow(_QUERIES["resume_run"], key, deadline_at)
        return _READ.run(row), True

    async def list_attempts(self, run_id: str) -> list[base.AttemptRecord]:
        key = _uuid(run_id)
        if key is None:
            return []
        return [_READ.attempt(row) for row in await self._fetch("list_attempts", key)]

    async def fork_run(self, new_id: str, source_id: str, from_step: str) -> base.RunRecord | None:
        source = _uuid(source_id)
        if source is None:
            return None
        async with self._connection() as conn, conn.transaction():
            row = await conn.fetchrow(_QUERIES["fork_run"], new_id, source)
            if row is None:
                return None
            await conn.execute(_QUERIES["fork_steps"], row["id"], source, from_step)
        return _READ.run(row)

    async def prune_runs(self, older_than: float, limit: int) -> int:
        async with self._connection() as conn:
            status: str = await conn.execute(_QUERIES["prune_runs"], older_than, limit)
        return int(status.split()[-1])

    # ---- schedules ----

    async def save_schedule(self, new: base.NewSchedule) -> base.ScheduleRecord:
        rows = await self._fetch(
            "save_schedule",
            new.name,
            new.workflow,
            new.cron,
            new.timezone,
            new.input,
            new.starting_deadline,
            new.next_fire_at,
        )
        return _READ.schedule(rows[0])

    async def get_schedule(self, name: str) -> base.ScheduleRecord | None:
        rows = await self._fetch("get_schedule", name)
        return _READ.schedule(rows[0]) if rows else None

    async def list_schedules(self) -> list[base.ScheduleRecord]:
        return [_READ.schedule(row) for row in await self._fetch("list_schedules")]

    async def pause_schedule(
        self, name: str, paused: bool, next_fire_at: datetime
    ) -> base.ScheduleRecord | None:
        rows = await self._fetch("pause_schedule", name, paused, next_fire_at)
        return _READ.schedule(rows[0]) if rows else None

    async def delete_schedule(self, name: str) -> bool:
        return bool(await self._fetch("delete_schedule", name))

    async def due_schedules(self, limit: int) -> list[base.ScheduleRecord]:
        return [_READ.schedule(row) for row in await self._fetch("due_schedules", limit)]

    async def next_tick_at(self) -> datetime | None:
        moment: datetime | None = await self._fetchval("next_tick_at")
        return moment

    async def fire_schedule(self, tick: base.ScheduleTick) -> str | None:
        run_id = await self._fetchval(
            "fire_schedule",
            tick.name,
            tick.due,
            tick.next_fire_at,
            tick.fire,
            tick.run_id,
            tick.idempotency_key,
            tick.version,
        )
        return None if run_id is None else str(run_id)

    # ---- signals ----

    async def send_signal(self, new: base.NewSignal) -> tuple[base.SignalRecord, bool]:
        key = _uuid(new.run_id)
        if key is None:
            raise RunNotFound(new.run_id)
        async with self._connection() as conn, conn.transaction():
            status = await conn.fetchval(_QUERIES["lock_run"], key)
            if status is None:
                raise RunNotFound(new.run_id)
            if base.RunStatus(status).finished:
                raise RunFinished(new.run_id, status, new.name)
            row = await conn.fetchrow(
                _QUERIES["send_signal"], key, new.name, new.payload, new.idempotency_key
            )
            if row["awaited"]:
                await conn.execute(_QUERIES["wake_run"], key)
        return _READ.signal(row), row["created"]

    async def list_signals(self, run_id: str) -> list[base.SignalRecord]:
        key = _uuid(run_id)
        if key is None:
            return []
        return [_READ.signal(row) for row in await self._fetch("list_signals", key)]

    async def receive_signal(self, wait: base.SignalWait) -> base.StepRecord | None:
        key = _uuid(wait.run_id)
        if key is None or _uuid(wait.token) is None:
            return None
        async with self._connection() as conn, conn.transaction():
            if await conn.fetchval(_QUERIES["lock_held_run"], key, wait.token) is None:
                return None
            row = await conn.fetchrow(
                _QUERIES["receive_signal"], key, wait.name, wait.key, wait.wake_at, wait.started_at
            )
        return _READ.step(row)

    # ---- worker side ----

    async def register_worker(self, worker: base.WorkerInfo) -> None:
        await self._execute(
            "register_worker",
            worker.id,
            worker.hostname,
            list(worker.workflows),
            worker.concurrency,
            encoding.limits_document(worker.limits),
            encoding.versions_document(worker.versions),
        )

    async def unregister_worker(self, worker_id: str) -> None:
        await self._execute("unregister_worker", worker_id)

    async def serving_workers(
        self, workflow: str, within_seconds: float, version: str | None = None
    ) -> int:
        count: int = await self._fetchval("serving_workers", workflow, within_seconds, version)
        return count

    async def served_versions(self, workflow: str, within_seconds: float) -> list[str]:
        rows = await self._fetch("served_versions", workflow, within_seconds)
        return [row["version"] for row in rows]

    async def concurrency_use(self, run_id: str) -> base.ConcurrencyUse | None:
        key = _uuid(run_id)
        if key is None:
            return None
        rows = await self._fetch("concurrency_use", key, base.WORKER_LIVENESS_SECONDS)
        return encoding.concurrency_use(rows[0]) if rows else None

    async def start_child(self, child: base.NewChild) -> base.RunRecord | None:
        parent, token, new = _uuid(child.parent_id), _uuid(child.token), child.run
        if parent is None or token is None:
            return None
        rows = await self._fetch(
            "start_child",
            parent,
            token,
            child.key,
            _uuid(new.id),
            new.workflow,
            new.version,
            new.input,
            new.deadline_at,
            child.wake_at,
            new.traceparent,
        )
        return _READ.run(rows[0]) if rows else None

    async def await_child(
        self, token: str, parent_id: str, key: str, wake_at: datetime
    ) -> base.StepRecord | None:
        parent, lease = _uuid(parent_id), _uuid(token)
        if parent is None or lease is None:
            return None
        async with self._connection() as conn, conn.transaction():
            if await conn.fetchval(_QUERIES["lock_held_run"], parent, lease) is None:
                return None
            row = await conn.fetchrow(_QUERIES["await_child"], parent, key, wake_at)
        return None if row is None else _READ.step(row)

    async def list_logs(self, run_id: str, after: int, limit: int) -> list[base.LogEntry]:
        key = _uuid(run_id)
        rows = [] if key is None else await self._fetch("list_logs", key, after, limit)
        return [_READ.log(row) for row in rows]

    async def last_logs(self, run_id: str, limit: int) -> list[base.LogEntry]:
        key = _uuid(run_id)
        rows = [] if key is None else await self._fetch("last_logs", key, limit)
        return [_READ.log(row) for row in rows]

    async def record_warning(self, token: str, run_id: str, warning: str) -> bool:
        key = _uuid(run_id)
        if key is None or _uuid(token) is None:
            return False
        async with self._connection() as conn:
            status: str = await conn.execute(_QUERIES["record_warning"], key, token, warning)
        return status == "UPDATE 1"

    async def claim_runs(
        self, worker_id: str, workflows: Sequence[str], limit: int, lease_seconds: float
    ) -> list[base.ClaimedRun]:
        if limit <= 0 or not workflows:
            return []
        rows = await self._fetch(
            "claim_runs",
            worker_id,
            list(workflows),
            limit,
            lease_seconds,
            base.WORKER_LIVENESS_SECONDS,
        )
        return [_claimed_run(row) for row in rows]

    async def heartbeat(
        self, worker_id: str, tokens: Sequence[str], lease_seconds: float
    ) -> set[str]:
        keys = [key for key in map(_uuid, tokens) if key is not None]
        rows = await self._fetch("heartbeat", worker_id, keys, lease_seconds)
        held = {row["token"] for row in rows}
        return {token for token in tokens if token not in held}

    async def write(self, ops: Sequence[base.WriteOp]) -> base.WriteResult:
        if not ops:
            return base.WriteResult()
        batch = json.dumps([_op_document(n, op) for n, op in enumerate(ops)])
        rejected: list[str] = await self._fetchval("write", batch)
        return base.WriteResult(rejected=set(rejected))

    async def wait_for_work(self, timeout: float) -> None:
        listener = base.opened(self._listener, self.display_url)
        await notify.wait_event(listener.work, timeout)
        listener.work.clear()
