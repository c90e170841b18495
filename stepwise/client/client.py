"""The client: how applications, the CLI and the operator start and follow runs.

It never executes workflows; workers do. It reads the database directly, so a result is
available the moment the run's final write commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from stepwise.backends import DEFAULT_URL, open_backend
from stepwise.backends.base import (
    WORKER_LIVENESS_SECONDS,
    AttemptRecord,
    Backend,
    LogEntry,
    NewRun,
    NewSignal,
    RunFilter,
    RunRecord,
    RunStatus,
    SignalRecord,
    StepRecord,
    Watch,
)
from stepwise.backoff import Backoff
from stepwise.client import paging, schedules
from stepwise.client.paging import Page
from stepwise.client.served import SERVED_VERSIONS_TTL, ServedVersions
from stepwise.core import codec, limits, steps, tracebacks, tracing
from stepwise.core.definitions import (
    InT,
    OutT,
    WorkflowDefinition,
    checked_name,
    stored_input,
    stored_json,
)
from stepwise.core.registry import Registry
from stepwise.errors import (
    AmbiguousRunId,
    DatabaseUnavailable,
    IdempotencyConflict,
    InvalidArgument,
    RunCanceled,
    RunFailed,
    RunNotFound,
    RunNotRetryable,
    StepNotFound,
    WaitTimeout,
)

log = logging.getLogger(__name__)

SLOT_WAIT = "waiting for a concurrency slot"
"""How ``Client.waiting_reason`` starts when a run waits for its concurrency group, which a
worker serves: the run is not stuck, it queues."""

PRUNE_BATCH_SIZE = 500
"""Runs deleted per transaction by ``prune``: small, so each batch holds its locks briefly."""


@dataclass(frozen=True, slots=True)
class Run(RunRecord[Any]):
    """A run as the client returns it: the stored run, its payloads (input, output, error,
    warning) decoded from JSON. ``warning`` is ``{"type": "ReplayDiverged", "message",
    "missing", "new"}`` when a replay did not follow the stored history."""

    @property
    def error_text(self) -> str | None:
        """The error as text, the user's file:line first, then its traceback (see
        ``tracebacks.render``); None when the run has no error."""
        return None if self.error is None else tracebacks.render(self.error)


@dataclass(frozen=True, slots=True)
class Step(StepRecord[Any]):
    """A step as the client returns it: the stored step, its output and error decoded."""

    @property
    def error_text(self) -> str | None:
        """The error as text, the user's file:line first, then its traceback."""
        return None if self.error is None else tracebacks.render(self.error)


@dataclass(frozen=True, slots=True)
class RunHandle(Run, Generic[OutT]):
    """What ``Client.start`` returns: the run as stored then, and the way to its output.
    ``await client.start(charge, order)`` is a ``RunHandle[Receipt]`` when ``charge`` declares
    ``-> Receipt``, and ``await run.result()`` a ``Receipt``."""

    client: Client = field(repr=False, compare=False, kw_only=True)
    output_type: codec.Declared | None = field(repr=False, compare=False, kw_only=True)
    """The declared return type of the workflow object the run was started with (None: it
    was started by name, or the workflow declares none: plain JSON)."""

    async def result(self, *, timeout: float | None = None) -> OutT:
        """The run's output once it succeeded, decoded to the declared return type;
        ``RunFailed``/``RunCanceled`` otherwise, ``WaitTimeout`` after ``timeout`` seconds."""
        output = await self.client.wait(self.id, timeout=timeout)
        if self.output_type is None:
            return cast(OutT, output)
        text = codec.dumps(output)
        return cast(OutT, codec.decode_result(codec.WORKFLOW_RESULT, text, self.output_type))


@dataclass(frozen=True, slots=True)
class Signal(SignalRecord[Any]):
    """A signal sent to a run (``Client.signal``), its payload decoded."""


@dataclass(frozen=True, slots=True)
class RunAttempt(AttemptRecord[Any]):
    """An earlier attempt of a run, closed by ``Client.retry``: its status and error decoded."""


_View = TypeVar("_View", Run, Step, RunAttempt, Signal)


def _decoded(
    view: type[_View], record: RunRecord | StepRecord | AttemptRecord | SignalRecord
) -> _View:
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    for name in record.PAYLOADS:
        if values[name] is not None:
            values[name] = codec.loads(values[name])
    return view(**values)


class Client:
    """``async with Client.connect(url) as client: run = await client.start("wf", {...})``.

    ``registry`` (optional) lets ``start`` validate input against a workflow's model before
    the run is stored; without it, the worker validates. ``max_payload_bytes`` bounds a run's
    input as JSON, like the worker's bound on step results.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        registry: Registry | None = None,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        wait_for_database: float = 0.0,
        served_versions_ttl: float = SERVED_VERSIONS_TTL,
    ) -> None:
        self.backend = backend
        self._registry = registry
        self.max_payload_bytes = limits.count(
            max_payload_bytes, "max_payload_bytes", high=codec.MAX_PAYLOAD_BYTES
        )
        self._wait_for_database = limits.seconds(wait_for_database, "wait_for_database", zero=True)
        ttl = limits.seconds(served_versions_ttl, "served_versions_ttl", zero=True)
        self._served = ServedVersions(backend, ttl)

    @classmethod
    def connect(
        cls,
        url: str = DEFAULT_URL,
        *,
        schema: str = "stepwise",
        registry: Registry | None = None,
        create: bool = True,
        max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
        wait_for_database: float = 0.0,
        served_versions_ttl: float = SERVED_VERSIONS_TTL,
    ) -> Client:
        """A client with its own backend, opened by ``async with``; with ``create=False`` a
        missing SQLite file is an error instead of a new database (see ``open_backend``).
        ``wait_for_database`` seconds: how long opening keeps trying a database that cannot
        be reached yet (a worker started beside a database that is still starting).
        ``served_versions_ttl`` seconds: how long a start without a version goes on using the
        versions live workers served when this client last read them (0: read at every
        start)."""
        return cls(
            open_backend(url, schema=schema, create=create),
            registry=registry,
            max_payload_bytes=max_payload_bytes,
            wait_for_database=wait_for_database,
            served_versions_ttl=served_versions_ttl,
        )

    async def __aenter__(self) -> Client:
        deadline = time.monotonic() + self._wait_for_database
        schedule = Backoff(initial=0.2, cap=5.0)
        failures = 0
        while True:
            try:
                await self.backend.open()
                return self
            except DatabaseUnavailable as exc:
                failures += 1
                delay = min(schedule.delay(failures), deadline - time.monotonic())
                if delay <= 0:
                    raise
                log.warning("%s; trying again in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.backend.close()

    async def start(
        self,
        workflow: WorkflowDefinition[InT, OutT] | str,
        input: InT | None = None,  # noqa: A002 - mirrors ctx.input
        *,
        idempotency_key: str | None = None,
        deadline: datetime | timedelta | None = None,
        version: str | None = None,
        run_id: str | None = None,
        scheduled_at: datetime | None = None,
        start_at: datetime | None = None,
        delay: float | timedelta | None = None,
    ) -> RunHandle[OutT]:
        """Store a new run for workers to pick up; with an ``idempotency_key`` already used for
        this workflow, return the run it started instead of starting another, provided the input
        is the same (``IdempotencyConflict`` otherwise: one key, one request).

        Given the workflow object, ``input`` is checked against its declared input type (a
        model instance or a dict of its fields) and the handle's ``result()`` is of its declared
        return type; given a name, ``input`` and ``result()`` are plain JSON (pydantic models,
        dataclasses, datetimes… are encoded as JSON).

        Every argument is checked before anything is stored: ``InvalidArgument`` (a name no
        ``@workflow`` can have, a key or version over 255 characters or holding NUL, a
        ``run_id`` that is not a UUID, a deadline that is not a positive finite duration) or
        ``InvalidInput`` (not JSON, too deeply nested, holding NUL, over ``max_payload_bytes``).

        ``scheduled_at`` is the schedule tick the run is for, seen as ``ctx.scheduled_at`` (the
        operator sets it for a WorkflowSchedule's runs).

        ``start_at`` (a timezone-aware datetime) or ``delay`` (seconds or a timedelta, not both)
        starts the run later: it stays pending and no worker claims it before then.
        ``version`` pins the run to that version of the workflow (the workflow object's own
        when it has one); without one, the run takes the newest version a live worker serves,
        as this client read it at most ``served_versions_ttl`` seconds (5) ago
        (``docs/versions.md``), and a run that finds none is pinned by the first worker that
        claims it, to the newest version that worker serves."""
        name, definition, version = await self._resolve(workflow, version, idempotency_key)
        deadline = _deadline_at(deadline)
        available_at = _start_at(start_at, delay)
        stored = stored_input(name, definition, input, self.max_payload_bytes)
        with tracing.starting(name) as traced:  # the run's trace starts here (core.tracing)
            new = NewRun(
                id=str(uuid.uuid4()) if run_id is None else _uuid_text(run_id),
                workflow=name,
                version=version,
                input=stored,
                idempotency_key=idempotency_key,
                deadline_at=deadline,
                available_at=available_at,
                scheduled_at=scheduled_at,
                traceparent=traced.traceparent,
            )
            record, created = await self.backend.create_run(new)
            traced.stored(record.id, created)
        return self._started(workflow, new, record, created)

    async def start_many(
        self,
        workflow: WorkflowDefinition[InT, OutT] | str,
        inputs: Iterable[InT | None],
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        deadline: datetime | timedelta | None = None,
        version: str | None = None,
        start_at: datetime | None = None,
        delay: float | timedelta | None = None,
    ) -> list[RunHandle[OutT]]:
        """``start`` for many runs of one workflow at once, their handles in the order of
        ``inputs``: the whole batch is stored in one transaction and one round trip
        (``Backend.create_runs``), so enqueuing costs far less per run than ``start``.

        Every input and key is checked as ``start`` checks it before anything is stored, so a
        bad item stores no run at all. ``idempotency_keys`` (one per input, None for none) are
        honoured per item as by ``start``: an item whose key was used before returns that run,
        or raises ``IdempotencyConflict`` when its input differs; a key repeated in the batch
        starts one run. The other arguments apply to every run. The batch's runs share one
        ``start`` span when tracing."""
        inputs = list(inputs)
        keys = [None] * len(inputs) if idempotency_keys is None else list(idempotency_keys)
        if len(keys) != len(inputs):
            raise InvalidArgument(
                "idempotency_keys", f"has {len(keys)} keys for {len(inputs)} inputs"
            )
        name, definition, version = await self._resolve(workflow, version, *keys)
        deadline = _deadline_at(deadline)
        available_at = _start_at(start_at, delay)
        stored = [stored_input(name, definition, x, self.max_payload_bytes) for x in inputs]
        with tracing.starting(name) as traced:
            batch = [
                NewRun(
                    id=str(uuid.uuid4()),
                    workflow=name,
                    version=version,
                    input=text,
                    idempotency_key=key,
                    deadline_at=deadline,
                    available_at=available_at,
                    traceparent=traced.traceparent,
                )
                for text, key in zip(stored, keys, strict=True)
            ]
            results = await self.backend.create_runs(batch) if batch else []
        return [
            self._started(workflow, new, record, created)
            for new, (record, created) in zip(batch, results, strict=True)
        ]

    async def _resolve(
        self,
        workflow: WorkflowDefinition[InT, OutT] | str,
        version: str | None,
        *keys: str | None,
    ) -> tuple[str, WorkflowDefinition[Any, Any] | None, str | None]:
        """The workflow's name, definition (when known) and the version its new runs take;
        ``version`` and ``keys`` checked."""
        definition = workflow if isinstance(workflow, WorkflowDefinition) else None
        if definition is None and self._registry is not None and workflow in self._registry:
            definition = self._registry.get(str(workflow))
        name = definition.name if definition is not None else checked_name(workflow)
        if definition is not None and version is None:
            version = definition.version
        for label, value in (*(("idempotency key", k) for k in keys), ("version", version)):
            if value is not None:
                limits.text(value, label, max_length=limits.MAX_KEY_LENGTH)
        if version is None:
            version = await self._served.newest(name)
        return name, definition, version

    def _started(
        self,
        workflow: WorkflowDefinition[InT, OutT] | str,
        new: NewRun,
        record: RunRecord[str],
        created: bool,
    ) -> RunHandle[OutT]:
        """The handle ``start`` returns for ``new``, stored as ``record``: a key already used
        with another input is an ``IdempotencyConflict``."""
        same = created or codec.same_json(record.input, new.input)
        if new.idempotency_key is not None and not same:
            raise IdempotencyConflict(new.idempotency_key, record.id, record.workflow)
        run = _decoded(Run, record)
        returns = workflow.output_type if isinstance(workflow, WorkflowDefinition) else None
        values = {f.name: getattr(run, f.name) for f in fields(run)}
        return RunHandle(**values, client=self, output_type=returns)

    async def get(self, run_id: str) -> Run:
        run = await self.find(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def find(self, run_id: str) -> Run | None:
        """The run, or None when no run has that id."""
        record = await self.backend.get_run(run_id)
        return None if record is None else _decoded(Run, record)

    async def steps(
        self, run_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Step]:
        """The run's steps in the order they first started: all of them, or a page of at most
        ``limit`` starting after ``cursor`` (the ``next_cursor`` of the previous page)."""
        if limit is not None:
            limits.count(limit, "limit", high=limits.MAX_LIST_LIMIT)
        after = None if cursor is None else paging.step_seq(cursor)
        fetch = None if limit is None else limit + 1
        found = await self.backend.list_steps(run_id, after_seq=after, limit=fetch)
        page = [_decoded(Step, s) for s in found[:limit]]
        more = limit is not None and len(found) > limit
        return Page(page, paging.step_cursor(page[-1]) if more else None)

    async def logs(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[LogEntry]:
        """The run's log lines (``ctx.log``, and plain ``logging`` inside its steps) in order,
        after the line whose ``seq`` is ``after``, at most ``limit``: pass the last ``seq``
        read to read on, as ``stepwise runs logs -f`` does."""
        limits.count(limit, "limit", high=limits.MAX_LIST_LIMIT)
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidArgument("after", f"must be a seq (an int, at least 0), got {after!r}")
        return await self.backend.list_logs(run_id, after, limit)

    async def log_tail(self, run_id: str, lines: int = 20) -> list[LogEntry]:
        """The run's last ``lines`` log lines, in order."""
        limits.count(lines, "lines", high=limits.MAX_LIST_LIMIT)
        return await self.backend.last_logs(run_id, lines)

    async def attempts(self, run_id: str) -> list[RunAttempt]:
        """How the attempts that ``retry`` closed ended, oldest first (the current attempt is
        the run itself)."""
        return [_decoded(RunAttempt, a) for a in await self.backend.list_attempts(run_id)]

    async def signals(self, run_id: str) -> list[Signal]:
        """The signals sent to the run, in send order, each with the wait step that received
        it (``delivered_to``, None while it is kept for a wait to come)."""
        return [_decoded(Signal, s) for s in await self.backend.list_signals(run_id)]

    async def stored(self, run_id: str) -> tuple[RunRecord, list[StepRecord]] | None:
        """The run and its steps as stored, payloads still JSON text (None: no such run): for
        a renderer that caps payloads instead of decoding them, as the operator's status does."""
        record = await self.backend.get_run(run_id)
        if record is None:
            return None
        return record, await self.backend.list_steps(run_id)

    @property
    def schedules(self) -> schedules.Schedules:
        """Schedules managed at run time: ``await client.schedules.add(name, cron, workflow)``
        (see ``stepwise.client.schedules``)."""
        return schedules.Schedules(self.backend, self._stored_input)

    def _stored_input(self, workflow: str, value: Any) -> str:
        """``value`` as the JSON text a run of ``workflow`` stores, checked as ``start`` does."""
        registry = self._registry
        definition = (
            registry.get(workflow) if registry is not None and workflow in registry else None
        )
        return stored_input(workflow, definition, value, self.max_payload_bytes)

    def watch(self) -> Watch:
        """Runs that change (steps written, status changed), as they change:
        ``async with client.watch() as changes: ids = await changes.next(timeout)``."""
        return self.backend.watch()

    async def list(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | list[RunStatus] | None = None,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        parent_id: str | None = None,
    ) -> Page[Run]:
        """A page of at most ``limit`` runs, newest first, optionally of one workflow, in some
        statuses, created from ``since`` (included) to ``until`` (excluded); ``cursor`` (the
        ``next_cursor`` of the previous page) continues after that page's last run, and runs
        started meanwhile never shift a page. ``parent_id``: only the child runs that run
        started (``ctx.step.run_workflow``, ``start_workflow``)."""
        limits.count(limit, "limit", high=limits.MAX_LIST_LIMIT)
        after = None if cursor is None else paging.run_position(cursor)
        query = RunFilter(
            workflow,
            _statuses(status),
            limit + 1,
            after=after,
            since=since,
            until=until,
            parent_id=parent_id,
        )
        found = await self.backend.list_runs(query)
        page = [_decoded(Run, r) for r in found[:limit]]
        more = len(found) > limit
        return Page(page, paging.run_cursor(page[-1]) if more else None)

    async def count(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | Sequence[RunStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many runs ``list`` would give over all its pages."""
        query = RunFilter(workflow, _statuses(status), since=since, until=until)
        return await self.backend.count_runs(query)

    async def resolve(self, run_id: str) -> str:
        """The id of the one run whose id is ``run_id`` or starts with it (``4b0e6a8e``):
        ``RunNotFound`` when none does, ``AmbiguousRunId`` listing them when several do."""
        prefix = run_id.strip().lower()
        if not _is_id_prefix(prefix):
            raise RunNotFound(run_id)
        low = prefix + _NO_ID[len(prefix) :]
        high = prefix + _NO_ID[len(prefix) :].replace("0", "f")
        found = await self.backend.run_ids_between(low, high, _CANDIDATES + 1)
        if not found:
            raise RunNotFound(run_id)
        if len(found) > 1:
            raise AmbiguousRunId(run_id, found[:_CANDIDATES], more=len(found) > _CANDIDATES)
        return found[0]

    async def cancel(self, run_id: str) -> Run:
        """Cancel an unfinished run: its worker stops at the next step boundary. A finished
        run is returned unchanged."""
        record = await self.backend.cancel_run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return _decoded(Run, record)

    async def retry(self, run_id: str, *, deadline: datetime | timedelta | None = None) -> Run:
        """Start a failed or canceled run again where it stopped. Its completed steps keep
        their results and do not run again; every other step (failed, or canceled in flight by
        a cancel or a deadline) runs again with a fresh attempt budget, and the workflow's own
        retry policy starts afresh too. The run gets the next attempt number; how the earlier
        attempt ended stays visible in ``attempts``. ``deadline`` replaces the run's deadline;
        without it, a deadline still ahead is kept and one that passed is dropped.

        ``RunNotFound``; ``RunNotRetryable`` when the run is pending, running, sleeping or
        succeeded (fork a succeeded run to run its steps again)."""
        resumed = await self.backend.resume_run(run_id, _deadline_at(deadline))
        if resumed is None:
            raise RunNotFound(run_id)
        record, changed = resumed
        if not changed:
            raise RunNotRetryable(run_id, record.status.value)
        return _decoded(Run, record)

    async def fork(self, run_id: str, *, from_step: str) -> Run:
        """A new run of the same workflow, version and input that reuses the stored results of
        the steps ``run_id`` completed before step ``from_step`` (in the order they first
        started) and runs ``from_step`` and everything after it; its ``forked_from`` names the
        original, which is left as it is. ``RunNotFound``; ``StepNotFound``, listing the run's
        steps, when it holds no step ``from_step``."""
        keys = [step.key for step in await self.backend.list_steps(run_id)]
        if from_step in keys:
            record = await self.backend.fork_run(str(uuid.uuid4()), run_id, from_step)
            if record is not None:
                return _decoded(Run, record)
        if await self.backend.get_run(run_id) is None:
            raise RunNotFound(run_id)
        raise StepNotFound(from_step, run_id, keys)

    async def prune(
        self, *, older_than: timedelta | float, batch_size: int = PRUNE_BATCH_SIZE
    ) -> int:
        """Delete the runs that finished more than ``older_than`` ago (a timedelta or seconds)
        with their steps and history; returns how many. Deleted in batches of ``batch_size``,
        each a short transaction of its own that skips runs someone holds, so claims and writes
        never wait for it."""
        seconds = limits.seconds(older_than, "older_than")
        limits.count(batch_size, "batch_size", high=limits.MAX_LIST_LIMIT)
        pruned = 0
        while True:
            batch = await self.backend.prune_runs(seconds, batch_size)
            pruned += batch
            if batch < batch_size:
                return pruned

    async def signal(
        self,
        run_id: str,
        name: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> Signal:
        """Send signal ``name`` to the run: its ``ctx.step.wait_for_signal(name)`` waiting now
        receives ``payload`` (JSON; pydantic models, dataclasses… are encoded) and the run
        resumes, or else the next one does: signals are kept until a wait takes them, each
        by one wait, in send order per name. With an ``idempotency_key`` already used for this
        run, nothing is sent again and the signal stored then is returned.

        ``InvalidInput`` (a payload that is not JSON), ``InvalidArgument`` (a name or key no
        step can hold), ``RunNotFound``, ``RunFinished`` (the run has finished: the signal
        could never be received)."""
        limits.text(name, "signal name", max_length=steps.MAX_NAME_LENGTH)
        if idempotency_key is not None:
            limits.text(idempotency_key, "idempotency key", max_length=limits.MAX_KEY_LENGTH)
        text = stored_json(f"payload of signal {name!r}", payload, self.max_payload_bytes)
        new = NewSignal(run_id, name, text, idempotency_key)
        record, _ = await self.backend.send_signal(new)
        return _decoded(Signal, record)

    async def wait(self, run_id: str, *, timeout: float | None = None) -> Any:
        """The run's output once it succeeded; ``RunFailed``/``RunCanceled`` otherwise, and
        ``WaitTimeout`` when ``timeout`` seconds pass first (the run goes on)."""
        run = await self.wait_finished(run_id, timeout=timeout)
        if run.status is RunStatus.SUCCEEDED:
            return run.output
        if run.status is RunStatus.CANCELED:
            raise RunCanceled(run_id)
        raise RunFailed(run_id, run.error)

    async def wait_finished(self, run_id: str, *, timeout: float | None = None) -> Run:
        """The run once it reached a final status, whatever that is."""
        if timeout is not None:
            limits.seconds(timeout, "timeout", zero=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        async with self.watch() as changes:
            while True:
                run = await self.get(run_id)
                if run.finished:
                    return run
                # Re-read on a change to this run, and every few seconds in any case.
                changed: set[str] | None = set()
                while changed is not None and run_id not in changed:
                    left = 5.0 if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        raise WaitTimeout(run_id, timeout or 0.0)
                    changed = await changes.next(min(left, 5.0))
                    if not changed:
                        break

    async def waiting_reason(self, run: RunRecord[Any]) -> str | None:
        """Why a pending run is not progressing, when that is visible: no live worker serves
        its workflow or the version it is pinned to (a rolling deploy may bring one), or its
        concurrency group is full."""
        if run.status is not RunStatus.PENDING:
            return None
        if not await self.backend.serving_workers(run.workflow, WORKER_LIVENESS_SECONDS):
            return f"no live worker serves workflow {run.workflow!r}"
        version = run.version
        if version is not None and not await self.backend.serving_workers(
            run.workflow, WORKER_LIVENESS_SECONDS, version
        ):
            return f"no live worker serves version {version!r} of workflow {run.workflow!r}"
        use = await self.backend.concurrency_use(run.id)
        if use is None or use.running < use.limit.concurrency:
            return None
        group = f" with {use.limit.key}={use.key!r}" if use.limit.key is not None else ""
        return (
            f"{SLOT_WAIT}: {use.running} of {use.limit.concurrency} runs of "
            f"workflow {run.workflow!r}{group} are running"
        )


def _statuses(status: RunStatus | Sequence[RunStatus] | None) -> list[RunStatus]:
    return [status] if isinstance(status, RunStatus) else list(status or [])


def _start_at(start_at: datetime | None, delay: float | timedelta | None) -> datetime | None:
    """When a delayed run becomes available (None: now). A naive ``start_at`` is refused: it
    would mean a different moment on the client and on the database."""
    if start_at is not None and delay is not None:
        raise InvalidArgument("start_at", "and delay cannot both be given: choose one")
    if delay is not None:
        return datetime.now(UTC) + timedelta(seconds=limits.seconds(delay, "delay", zero=True))
    if start_at is None:
        return None
    if not isinstance(start_at, datetime):
        raise TypeError(f"start_at must be a datetime, got {type(start_at).__name__}")
    if start_at.utcoffset() is None:
        raise InvalidArgument(
            "start_at", f"must be timezone-aware (e.g. {start_at.isoformat()}+00:00 for UTC)"
        )
    return start_at


def _deadline_at(deadline: datetime | timedelta | None) -> datetime | None:
    """A deadline given as a moment or as a positive duration from now, as a moment."""
    if isinstance(deadline, timedelta):
        return datetime.now(UTC) + timedelta(seconds=limits.seconds(deadline, "deadline"))
    if deadline is not None and not isinstance(deadline, datetime):
        raise TypeError(f"deadline must be a datetime or a timedelta, got {deadline!r}")
    return deadline


_NO_ID = "00000000-0000-0000-0000-000000000000"
_HEX = frozenset("0123456789abcdef")
_CANDIDATES = 10
"""The runs an ambiguous prefix lists at most."""


def _is_id_prefix(text: str) -> bool:
    """Whether ``text`` (lowercase) can start a run id: hex digits, dashes where UUIDs have them."""
    return 0 < len(text) <= len(_NO_ID) and all(
        c == "-" if t == "-" else c in _HEX for c, t in zip(text, _NO_ID, strict=False)
    )


def _uuid_text(run_id: str) -> str:
    """``run_id`` in the canonical UUID form, the only form every backend stores alike."""
    try:
        return str(uuid.UUID(run_id))
    except (TypeError, ValueError, AttributeError):
        raise InvalidArgument("run id", f"must be a UUID, got {limits.shown(run_id)}") from None
