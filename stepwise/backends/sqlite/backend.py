"""The embedded backend: one SQLite file, shared by the worker processes of one machine.

Why it looks like this:

* ``sqlite3`` blocks, the interface is async: every call runs on ONE thread owned by the
  instance (a single-thread executor that also creates the connection), so the event loop never
  blocks and the connection is only ever touched by the thread that made it.
* Several processes may share the file. Every check-then-write (claim, fenced write, cancel,
  migrations) runs in a ``BEGIN IMMEDIATE`` transaction: it holds the database's only write
  lock from its first read, so no other process can claim or cancel between the fencing check
  and the write. ``busy_timeout`` makes the others wait for the lock instead of failing.
* Timestamps are computed in Python (UTC) and stored as fixed-width ISO-8601 text, so text order
  is time order and records get timezone-aware datetimes back.
* SQLite cannot push notifications: ``wait_for_work`` and ``watch`` poll. Work created, released
  or rescheduled through this very instance wakes its ``wait_for_work`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from stepwise.backends import base, encoding, migrations
from stepwise.backends.sqlfiles import load_queries
from stepwise.errors import (
    ConfigurationError,
    DatabaseDamaged,
    DatabaseUnavailable,
    RunFinished,
    RunNotFound,
)

_T = TypeVar("_T")

_QUERIES = load_queries("stepwise.backends.sqlite")
_MIGRATIONS_PACKAGE = "stepwise.backends.sqlite.migrations"
_BUSY_TIMEOUT_SECONDS = 30.0

_Params = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


_text = encoding.time_text
_READ = encoding.Reader(time=datetime.fromisoformat)


def _maybe_text(moment: datetime | None) -> str | None:
    return None if moment is None else _text(moment)


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """SQLite found the file corrupt, truncated, or not a database at all."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _database_path(url: str) -> str:
    """``sqlite:///relative/path.db`` → ``relative/path.db``, ``sqlite:////a.db`` → ``/a.db``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or len(parts.path) < 2 or parts.query:
        raise ConfigurationError(
            f"unsupported SQLite URL {url!r}: use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    return parts.path[1:]


def _statements(script: str) -> Iterable[str]:
    """Split a migration into statements, so they run inside the caller's transaction
    (``executescript`` would commit it first)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending


def _transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """``work(conn)`` holding the write lock from its first read to its commit."""
    conn.execute(_QUERIES["begin_immediate"])
    try:
        result = work(conn)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return result


_MAKES_WORK = (base.SuspendRun, base.ReleaseRun, base.RetryRun)
_RETRYABLE = (base.RunStatus.FAILED.value, base.RunStatus.CANCELED.value)


class _PollingWatch:
    """SQLite cannot push changes: after each poll interval, "re-read everything"."""

    def __init__(self, poll_interval: float) -> None:
        self._poll_interval = poll_interval

    async def next(self, timeout: float) -> set[str] | None:
        await asyncio.sleep(max(0.0, min(timeout, self._poll_interval)))
        return None

    async def __aenter__(self) -> _PollingWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class SqliteBackend:
    """``Backend`` on a SQLite file; see the module docstring for how it stays correct."""

    def __init__(self, url: str, *, poll_interval: float = 0.1, create: bool = True) -> None:
        self.display_url = url
        self._path = _database_path(url)
        self._create = create
        self._poll_interval = poll_interval
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stepwise-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._work = asyncio.Event()

    # ---- plumbing: the work functions run on the instance's one database thread ----

    async def _call(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work(conn)`` on the database thread, in autocommit (one statement is atomic)."""
        conn = base.opened(self._conn, self.display_url)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, conn)
        except sqlite3.DatabaseError as exc:
            if _damaged(exc) or isinstance(exc, sqlite3.OperationalError):
                raise self._refusal(exc) from exc
            raise

    async def _atomic(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work(conn)`` on the database thread, in one ``BEGIN IMMEDIATE`` transaction."""
        return await self._call(lambda conn: _transaction(conn, work))

    # ---- lifecycle ----

    async def open(self) -> None:
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._connect
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: OSError | sqlite3.Error) -> DatabaseUnavailable | DatabaseDamaged:
        """The error to raise for a failed call: a file that cannot serve as a database is
        ``DatabaseDamaged`` (retrying cannot help), anything else ``DatabaseUnavailable``."""
        path = Path(self._path)
        if isinstance(exc, sqlite3.DatabaseError) and _damaged(exc):
            reason = f"{exc} (restore it from a backup, or move it away to start afresh)"
            return DatabaseDamaged(self._path, reason)
        if path.is_dir():
            return DatabaseDamaged(self._path, "it is a directory, not a SQLite database file")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return DatabaseDamaged(self._path, "permission denied: it must be read-write")
        return DatabaseUnavailable(self.display_url, str(exc))

    def _connect(self) -> sqlite3.Connection:
        if self._create:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            target, uri = self._path, False
        elif Path(self._path).is_file():
            # mode=rw: should the file vanish after the check, SQLite fails instead of creating.
            target, uri = f"file:{quote(self._path)}?mode=rw", True
        else:
            raise ConfigurationError(
                f"no SQLite database at {self._path!r} ({self.display_url}); "
                "this command does not create one"
            )
        # isolation_level=None: no implicit transactions; ours are explicit BEGIN IMMEDIATE.
        # timeout is SQLite's busy_timeout: wait for another process's write lock, don't fail.
        conn = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, uri=uri)
        try:
            conn.row_factory = sqlite3.Row
            conn.executescript(_QUERIES["configure_connection"])
            _transaction(conn, lambda conn: _migrate(conn, self.display_url))
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    # ---- client side ----

    async def create_run(self, new: base.NewRun) -> tuple[base.RunRecord, bool]:
        (created,) = await self.create_runs([new])
        return created

    async def create_runs(self, new: Sequence[base.NewRun]) -> list[tuple[base.RunRecord, bool]]:
        now = _now()
        batch = [_new_run_params(run, now) for run in new]
        results = await self._atomic(lambda conn: [_insert_run(conn, p) for p in batch])
        if any(created for _, created in results):
            self._work.set()
        return results

    async def get_run(self, run_id: str) -> base.RunRecord | None:
        return await self._call(lambda conn: _get_run(conn, run_id))

    async def list_runs(self, query: base.RunFilter) -> list[base.RunRecord]:
        after = query.after
        params = {
            **_run_filter(query),
            "limit": query.limit,
            "after_created_at": None if after is None else encoding.time_text(after.created_at),
            "after_id": None if after is None else after.id,
            "parent_id": query.parent_id,
        }
        rows = await self._call(lambda conn: conn.execute(_QUERIES["list_runs"], params).fetchall())
        return [_READ.run(row) for row in rows]

    async def count_runs(self, query: base.RunFilter) -> int:
        params = _run_filter(query)
        count: int = await self._call(
            lambda conn: conn.execute(_QUERIES["count_runs"], params).fetchone()[0]
        )
        return count

    async def active_runs(self, known: Sequence[str]) -> list[base.ActiveRuns]:
        params = {"known": json.dumps(list(known)), "now": _text(_now())}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["active_runs"], params).fetchall()
        )
        return [base.ActiveRuns(*row) for row in rows]

    async def run_ids_between(self, low: str, high: str, limit: int) -> list[str]:
        params = {"low": low, "high": high, "limit": limit}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["run_ids_between"], params).fetchall()
        )
        return [row["id"] for row in rows]

    async def list_steps(
        self, run_id: str, *, after_seq: int | None = None, limit: int | None = None
    ) -> list[base.StepRecord]:
        params = {"run_id": run_id, "after_seq": after_seq, "limit": -1 if limit is None else limit}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["list_steps"], params).fetchall()
        )
        return [_READ.step(row) for row in rows]

    async def cancel_run(self, run_id: str) -> base.RunRecord | None:
        params = {"id": run_id, "now": _text(_now())}

        def cancel(conn: sqlite3.Connection) -> base.RunRecord | None:
            _cancel_steps(conn, conn.execute(_QUERIES["cancel_run"], params), params["now"])
            return _get_run(conn, run_id)

        return await self._atomic(cancel)

    async def expire_runs(self) -> int:
        now = _text(_now())

        def expire(conn: sqlite3.Connection) -> int:
            return _cancel_steps(conn, conn.execute(_QUERIES["expire_runs"], {"now": now}), now)

        return await self._atomic(expire)

    def watch(self) -> base.Watch:
        return _PollingWatch(self._poll_interval)

    async def resume_run(
        self, run_id: str, deadline_at: datetime | None
    ) -> tuple[base.RunRecord, bool] | None:
        params = {"id": run_id, "deadline_at": _maybe_text(deadline_at), "now": _text(_now())}
        resumed = await self._atomic(lambda conn: _resume(conn, params))
        if resumed is not None and resumed[1]:
            self._work.set()
        return resumed

    async def list_attempts(self, run_id: str) -> list[base.AttemptRecord]:
        params = {"run_id": run_id}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["list_attempts"], params).fetchall()
        )
        return [_READ.attempt(row) for row in rows]

    async def fork_run(self, new_id: str, source_id: str, from_step: str) -> base.RunRecord | None:
        params = {"id": new_id, "source": source_id, "from_step": from_step, "now": _text(_now())}

        def fork(conn: sqlite3.Connection) -> base.RunRecord | None:
            row = conn.execute(_QUERIES["fork_run"], params).fetchone()
            if row is None:
                return None
            conn.execute(_QUERIES["fork_steps"], params)
            return _READ.run(row)

        forked = await self._atomic(fork)
        if forked is not None:
            self._work.set()
        return forked

    async def prune_runs(self, older_than: float, limit: int) -> int:
        cutoff = _text(_now() - timedelta(seconds=older_than))
        params = {"cutoff": cutoff, "limit": limit}
        pruned: int = await self._atomic(
            lambda conn: conn.execute(_QUERIES["prune_runs"], params).rowcount
        )
        return pruned

    # ---- schedules ----

    async def save_schedule(self, new: base.NewSchedule) -> base.ScheduleRecord:
        params = {
            "name": new.name,
            "workflow": new.workflow,
            "cron": new.cron,
            "timezone": new.timezone,
            "input": new.input,
            "starting_deadline": new.starting_deadline,
            "next_fire_at": _text(new.next_fire_at),
            "now": _text(_now()),
        }
        row = await self._atomic(
            lambda conn: conn.execute(_QUERIES["save_schedule"], params).fetchone()
        )
        return _READ.schedule(row)

    async def get_schedule(self, name: str) -> base.ScheduleRecord | None:
        params = {"name": name}
        row = await self._call(
            lambda conn: conn.execute(_QUERIES["get_schedule"], params).fetchone()
        )
        return None if row is None else _READ.schedule(row)

    async def list_schedules(self) -> list[base.ScheduleRecord]:
        rows = await self._call(lambda conn: conn.execute(_QUERIES["list_schedules"]).fetchall())
        return [_READ.schedule(row) for row in rows]

    async def pause_schedule(
        self, name: str, paused: bool, next_fire_at: datetime
    ) -> base.ScheduleRecord | None:
        params = {
            "name": name,
            "paused": int(paused),
            "next_fire_at": _text(next_fire_at),
            "now": _text(_now()),
        }
        row = await self._atomic(
            lambda conn: conn.execute(_QUERIES["pause_schedule"], params).fetchone()
        )
        return None if row is None else _READ.schedule(row)

    async def delete_schedule(self, name: str) -> bool:
        params = {"name": name}
        row = await self._atomic(
            lambda conn: conn.execute(_QUERIES["delete_schedule"], params).fetchone()
        )
        return row is not None

    async def due_schedules(self, limit: int) -> list[base.ScheduleRecord]:
        params = {"limit": limit, "now": _text(_now())}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["due_schedules"], params).fetchall()
        )
        return [_READ.schedule(row) for row in rows]

    async def next_tick_at(self) -> datetime | None:
        text = await self._call(lambda conn: conn.execute(_QUERIES["next_tick_at"]).fetchone()[0])
        return None if text is None else datetime.fromisoformat(text)

    async def fire_schedule(self, tick: base.ScheduleTick) -> str | None:
        params = {
            "name": tick.name,
            "due": _text(tick.due),
            "next_fire_at": _text(tick.next_fire_at),
            "fire": _maybe_text(tick.fire),
            "run_id": tick.run_id,
            "idempotency_key": tick.idempotency_key,
            "version": tick.version,
            "now": _text(_now()),
        }
        run_id = await self._atomic(lambda conn: _fire(conn, params))
        if run_id is not None:
            self._work.set()
        return run_id

    # ---- signals ----

    async def send_signal(self, new: base.NewSignal) -> tuple[base.SignalRecord, bool]:
        params = {
            "id": new.run_id,
            "run_id": new.run_id,
            "name": new.name,
            "payload": new.payload,
            "idempotency_key": new.idempotency_key,
            "now": _text(_now()),
        }
        sent, created, woken = await self._atomic(lambda conn: _send_signal(conn, params))
        if woken:
            self._work.set()
        return sent, created

    async def list_signals(self, run_id: str) -> list[base.SignalRecord]:
        params = {"run_id": run_id}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["list_signals"], params).fetchall()
        )
        return [_READ.signal(row) for row in rows]

    async def receive_signal(self, wait: base.SignalWait) -> base.StepRecord | None:
        params = {
            "run_id": wait.run_id,
            "token": wait.token,
            "key": wait.key,
            "name": wait.name,
            "wake_at": _maybe_text(wait.wake_at),
            "started_at": _text(wait.started_at),
            "now": _text(_now()),
        }
        return await self._atomic(lambda conn: _receive_signal(conn, params))

    # ---- worker side ----

    async def register_worker(self, worker: base.WorkerInfo) -> None:
        params = {
            "id": worker.id,
            "hostname": worker.hostname,
            "workflows": json.dumps(list(worker.workflows)),
            "concurrency": worker.concurrency,
            "limits": encoding.limits_document(worker.limits),
            "versions": encoding.versions_document(worker.versions),
            "now": _text(_now()),
        }
        await self._call(lambda conn: conn.execute(_QUERIES["register_worker"], params))

    async def unregister_worker(self, worker_id: str) -> None:
        params = {"id": worker_id}
        await self._call(lambda conn: conn.execute(_QUERIES["unregister_worker"], params))

    async def serving_workers(
        self, workflow: str, within_seconds: float, version: str | None = None
    ) -> int:
        since = _text(_now() - timedelta(seconds=within_seconds))
        params = {"workflow": workflow, "since": since, "version": version}
        count: int = await self._call(
            lambda conn: conn.execute(_QUERIES["serving_workers"], params).fetchone()[0]
        )
        return count

    async def served_versions(self, workflow: str, within_seconds: float) -> list[str]:
        params = {"workflow": workflow, "since": _text(_now() - timedelta(seconds=within_seconds))}
        rows = await self._call(
            lambda conn: conn.execute(_QUERIES["served_versions"], params).fetchall()
        )
        return [row["version"] for row in rows]

    async def concurrency_use(self, run_id: str) -> base.ConcurrencyUse | None:
        since = _now() - timedelta(seconds=base.WORKER_LIVENESS_SECONDS)
        params = {"id": run_id, "since": _text(since)}
        row = await self._call(
            lambda conn: conn.execute(_QUERIES["concurrency_use"], params).fetchone()
        )
        return None if row is None else encoding.concurrency_use(row)

    async def claim_runs(
        self, worker_id: str, workflows: Sequence[str], limit: int, lease_seconds: float
    ) -> list[base.ClaimedRun]:
        if limit <= 0 or not workflows:
            return []
        names = json.dumps(list(workflows))
        return await self._call(
            lambda conn: _claim(conn, worker_id, names, limit, timedelta(seconds=lease_seconds))
        )

    async def heartbeat(
        self, worker_id: str, tokens: Sequence[str], lease_seconds: float
    ) -> set[str]:
        now = _now()
        runs = {
            "tokens": json.dumps(list(tokens)),
            "expires_at": _text(now + timedelta(seconds=lease_seconds)),
        }
        worker = {"id": worker_id, "now": _text(now)}

        def beat(conn: sqlite3.Connection) -> set[str]:
            held = {row[0] for row in conn.execute(_QUERIES["heartbeat_runs"], runs)}
            conn.execute(_QUERIES["heartbeat_worker"], worker)
            return held

        return set(tokens) - await self._atomic(beat)

    async def start_child(self, child: base.NewChild) -> base.RunRecord | None:
        new = child.run
        params = {
            "run_id": child.parent_id,
            "token": child.token,
            "key": child.key,
            "id": new.id,
            "workflow": new.workflow,
            "version": new.version,
            "input": new.input,
            "deadline_at": _maybe_text(new.deadline_at),
            "wake_at": _maybe_text(child.wake_at),
            "traceparent": new.traceparent,
            "now": _text(_now()),
        }
        record, started = await self._atomic(lambda conn: _start_child(conn, params))
        if started:
            self._work.set()
        return record

    async def await_child(
        self, token: str, parent_id: str, key: str, wake_at: datetime
    ) -> base.StepRecord | None:
        params = {"run_id": parent_id, "token": token, "key": key, "wake_at": _text(wake_at)}

        def mark(conn: sqlite3.Connection) -> base.StepRecord | None:
            if conn.execute(_QUERIES["lock_held_run"], params).fetchone() is None:
                return None
            conn.execute(_QUERIES["await_child"], params)
            row = conn.execute(_QUERIES["step_of_run"], params).fetchone()
            return None if row is None else _READ.step(row)

        return await self._atomic(mark)

    async def list_logs(self, run_id: str, after: int, limit: int) -> list[base.LogEntry]:
        params = {"run_id": run_id, "after": after, "limit": limit}
        rows = await self._call(lambda conn: conn.execute(_QUERIES["list_logs"], params).fetchall())
        return [_READ.log(row) for row in rows]

    async def last_logs(self, run_id: str, limit: int) -> list[base.LogEntry]:
        params = {"run_id": run_id, "limit": limit}
        rows = await self._call(lambda conn: conn.execute(_QUERIES["last_logs"], params).fetchall())
        return [_READ.log(row) for row in rows]

    async def record_warning(self, token: str, run_id: str, warning: str) -> bool:
        params = {"run_id": run_id, "token": token, "warning": warning, "now": _text(_now())}
        stored: int = await self._call(
            lambda conn: conn.execute(_QUERIES["record_warning"], params).rowcount
        )
        return stored == 1

    async def write(self, ops: Sequence[base.WriteOp]) -> base.WriteResult:
        if not ops:
            return base.WriteResult()
        result = await self._atomic(lambda conn: _write(conn, ops))
        if any(isinstance(op, _MAKES_WORK) for op in ops):
            self._work.set()
        return result

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), max(0.0, min(timeout, self._poll_interval)))
        self._work.clear()


# ---- work functions: each runs on a backend's database thread ----------------------------


def _migrate(conn: sqlite3.Connection, url: str) -> None:
    conn.execute(_QUERIES["create_migrations_table"])
    applied = {row[0] for row in conn.execute(_QUERIES["applied_migrations"])}
    for migration in migrations.pending(_MIGRATIONS_PACKAGE, applied, url):
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(
            _QUERIES["record_migration"],
            {"version": migration.version, "name": migration.name, "now": _text(_now())},
        )


def _new_run_params(new: base.NewRun, now: datetime) -> _Params:
    return {
        "id": new.id,
        "workflow": new.workflow,
        "version": new.version,
        "input": new.input,
        "idempotency_key": new.idempotency_key,
        "deadline_at": _maybe_text(new.deadline_at),
        "available_at": _text(new.available_at or now),
        "scheduled_at": _maybe_text(new.scheduled_at),
        "traceparent": new.traceparent,
        "now": _text(now),
    }


def _insert_run(conn: sqlite3.Connection, params: _Params) -> tuple[base.RunRecord, bool]:
    row = conn.execute(_QUERIES["insert_run"], params).fetchone()
    if row is not None:
        return _READ.run(row), True
    existing = conn.execute(_QUERIES["run_by_idempotency_key"], params).fetchone()
    return _READ.run(existing), False


def _fire(conn: sqlite3.Connection, params: _Params) -> str | None:
    """Advance the schedule if the tick still holds, then start the tick's run (if it fires):
    one transaction, so a tick is never advanced without its run, nor fired twice."""
    advanced = conn.execute(_QUERIES["advance_schedule"], params).fetchone()
    if advanced is None or params["fire"] is None:
        return None
    values = {**params, "workflow": advanced["workflow"], "input": advanced["input"]}
    row = conn.execute(_QUERIES["insert_scheduled_run"], values).fetchone()
    return None if row is None else str(row[0])


def _cancel_steps(conn: sqlite3.Connection, ended: sqlite3.Cursor, now: str) -> int:
    """Mark canceled the steps in flight of the runs whose ids ``ended`` returns; how many."""
    ids = [row[0] for row in ended]
    if ids:
        conn.execute(_QUERIES["cancel_steps"], {"ids": json.dumps(ids), "now": now})
    return len(ids)


def _resume(conn: sqlite3.Connection, params: _Params) -> tuple[base.RunRecord, bool] | None:
    row = conn.execute(_QUERIES["lock_run"], params).fetchone()
    if row is None:
        return None
    if row["status"] not in _RETRYABLE:
        return _READ.run(conn.execute(_QUERIES["get_run"], params).fetchone()), False
    conn.execute(_QUERIES["record_attempt"], params)
    conn.execute(_QUERIES["erase_unfinished_steps"], params)
    return _READ.run(conn.execute(_QUERIES["resume_run"], params).fetchone()), True


def _send_signal(conn: sqlite3.Connection, params: _Params) -> tuple[base.SignalRecord, bool, bool]:
    """Store the signal (or find the one its idempotency key stored) and wake the run if a
    step waits for it: the signal, whether it is new, whether the run was woken."""
    run = conn.execute(_QUERIES["lock_run"], params).fetchone()
    if run is None:
        raise RunNotFound(params["run_id"])
    if base.RunStatus(run["status"]).finished:
        raise RunFinished(params["run_id"], run["status"], params["name"])
    row = conn.execute(_QUERIES["insert_signal"], params).fetchone()
    if row is None:
        existing = conn.execute(_QUERIES["signal_by_idempotency_key"], params).fetchone()
        return _READ.signal(existing), False, False
    woken = False
    if conn.execute(_QUERIES["signal_awaited"], params).fetchone()[0]:
        woken = conn.execute(_QUERIES["wake_run"], params).fetchone() is not None
    return _READ.signal(row), True, woken


def _receive_signal(conn: sqlite3.Connection, params: _Params) -> base.StepRecord | None:
    """The wait step as ``Backend.receive_signal`` stores it; None: the lease is not held."""
    if conn.execute(_QUERIES["lock_held_run"], params).fetchone() is None:
        return None
    stored = conn.execute(_QUERIES["completed_step"], params).fetchone()
    if stored is not None:
        return _READ.step(stored)
    delivered = conn.execute(_QUERIES["deliver_signal"], params).fetchone()
    output = None
    if delivered is not None:
        output = delivered["payload"]
    elif params["wake_at"] is not None and params["wake_at"] <= params["now"]:
        output = "null"
    return _READ.step(conn.execute(_QUERIES["store_wait"], {**params, "output": output}).fetchone())


def _start_child(conn: sqlite3.Connection, params: _Params) -> tuple[base.RunRecord | None, bool]:
    """The child and its parent's step, stored together (or the child the step started, if it
    exists); None when the parent is not held under the token. True: a child was started."""
    if conn.execute(_QUERIES["lock_held_run"], params).fetchone() is None:
        return None, False
    existing = conn.execute(_QUERIES["child_of_step"], params).fetchone()
    if existing is not None:
        return _READ.run(existing), False
    conn.execute(_QUERIES["insert_child_step"], params)
    return _READ.run(conn.execute(_QUERIES["insert_child"], params).fetchone()), True


def _get_run(conn: sqlite3.Connection, run_id: str) -> base.RunRecord | None:
    row = conn.execute(_QUERIES["get_run"], {"id": run_id}).fetchone()
    return None if row is None else _READ.run(row)


def _run_filter(query: base.RunFilter) -> dict[str, str | None]:
    """The parameters ``list_runs`` and ``count_runs`` share."""
    statuses = [s.value for s in query.statuses]
    return {
        "workflow": query.workflow,
        "statuses": json.dumps(statuses) if statuses else None,
        "since": None if query.since is None else encoding.time_text(query.since),
        "until": None if query.until is None else encoding.time_text(query.until),
    }


def _claim(
    conn: sqlite3.Connection, worker_id: str, workflows: str, limit: int, lease: timedelta
) -> list[base.ClaimedRun]:
    # An idle worker polls: look without the write lock first, so polling never holds up the
    # other processes' writers. The candidates are read again under the lock.
    now = _now()
    params = {
        "workflows": workflows,
        "limit": limit,
        "now": _text(now),
        "worker": worker_id,
        "since": _text(now - timedelta(seconds=base.WORKER_LIVENESS_SECONDS)),
    }
    if conn.execute(_QUERIES["claim_candidates"], params).fetchone() is None:
        return []

    def take(conn: sqlite3.Connection) -> list[base.ClaimedRun]:
        now = _now()
        params["now"] = _text(now)
        keys = {
            row["id"]: row["concurrency_key"]
            for row in conn.execute(_QUERIES["claim_candidates"], params)
        }
        if not keys:
            return []
        tokens = {run_id: str(uuid.uuid4()) for run_id in keys}
        leased = {"owner": worker_id, "expires_at": _text(now + lease), "now": _text(now)}
        conn.executemany(
            _QUERIES["claim_run"],
            [
                {"id": run_id, "token": token, "concurrency_key": keys[run_id], **leased}
                for run_id, token in tokens.items()
            ],
        )
        ids = {"ids": json.dumps(list(tokens))}
        runs = {row["id"]: _READ.run(row) for row in conn.execute(_QUERIES["runs_by_ids"], ids)}
        steps: dict[str, list[base.StepRecord]] = {run_id: [] for run_id in tokens}
        for row in conn.execute(_QUERIES["steps_of_runs"], ids):
            steps[row["run_id"]].append(_READ.step(row))
        return [
            base.ClaimedRun(runs[run_id], token, steps[run_id]) for run_id, token in tokens.items()
        ]

    return _transaction(conn, take)


def _write(conn: sqlite3.Connection, ops: Sequence[base.WriteOp]) -> base.WriteResult:
    """Fence the batch (``fence_ops``), then run each accepted op's named query, consecutive
    ops of one kind in one ``executemany``."""
    docs = [encoding.document(op) for op in ops]
    fenced = json.dumps([{k: doc[k] for k in ("token", "run_id", "kind")} for doc in docs])
    verdicts = conn.execute(_QUERIES["fence_ops"], {"batch": fenced}).fetchall()
    now = _text(_now())
    accepted = [{**docs[n], "now": now} for n, _, ok in verdicts if ok]
    for kind, group in groupby(accepted, key=itemgetter("kind")):
        params = list(group)
        conn.executemany(_QUERIES[kind], params)
        if kind == "retry_run":
            conn.executemany(_QUERIES["delete_failed_steps"], params)
    return base.WriteResult(rejected={token for _, token, ok in verdicts if not ok})
