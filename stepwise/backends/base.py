"""The one narrow seam between the engine and storage, and the records it speaks.

Every backend (Postgres, SQLite) implements ``Backend``; one conformance suite
(``tests/backends/test_conformance.py``) holds them to the same behaviour.

Invariants every implementation keeps:

* A run starts executing only through ``claim_runs``, which hands out a fresh
  ``lease_token`` per claim. Every later write for that run carries the token and is
  *fenced*: it applies only while the run is still ``running`` under that very token.
  A worker whose lease expired (another worker claimed the run) or whose run was
  canceled gets its token back in the "rejected" set and must abandon the run.
  Fencing goes by token, not by clock: a lease that lapsed while nobody claimed the run
  still lets its holder write, and its heartbeat renews it.
* A completed step is never overwritten: once ``completed`` its output is final.
* ``write`` applies a whole batch in one transaction, so a worker can group the
  step completions of many runs into one commit; a completed step is durable when
  ``write`` returns, before the workflow moves past it.
* Payloads (input, output, error, warning) are opaque JSON text here; only ``core.codec``
  interprets them. A record's type parameter says which form its payloads take: JSON text as
  stored (``RunRecord``, i.e. ``RunRecord[str]``, what backends speak) or decoded (the
  client's ``Run``, a ``RunRecord[Any]``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import ClassVar, Generic, Protocol, TypeVar

from typing_extensions import TypeVar as TypeVarWithDefault

Payload = TypeVarWithDefault("Payload", default=str)
"""The form of a record's payloads: ``str`` (JSON text, as stored) unless said otherwise."""
_T = TypeVar("_T")


class RunStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED})


class StepStatus(enum.StrEnum):
    RUNNING = "running"
    SLEEPING = "sleeping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    """In flight (running or sleeping) when its run was canceled or failed by its deadline."""


@dataclass(frozen=True, slots=True)
class RunRecord(Generic[Payload]):
    """A run. Backends fill every field from the ``runs`` column of the same name."""

    PAYLOADS: ClassVar[tuple[str, ...]] = ("input", "output", "error", "warning")
    """The fields that hold JSON documents."""

    id: str
    workflow: str
    version: str | None
    status: RunStatus
    input: Payload
    output: Payload | None
    error: Payload | None
    idempotency_key: str | None
    attempt: int
    """Workflow-level attempt, 1-based; grows only through ``RetryRun``."""
    claims: int
    """How many times a worker claimed this run (crash recoveries show up here)."""
    deadline_at: datetime | None
    available_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    recoveries: int = 0
    """Claims in a row that took the run over from a worker that died or stalled past its
    lease, with no step completed in between: a crash loop shows up here (counted at claim
    time, so any way of dying counts)."""
    warning: Payload | None = None
    """``{"type", "message", …}`` the engine stored about the run without failing it (a replay
    that diverged from the stored history, with ``missing`` and ``new``); None when there is
    none."""
    first_attempt: int = 1
    """The attempt a manual retry (``resume_run``) started the run again at, 1 until then: a
    workflow's retry policy counts its attempts from it."""
    forked_from: str | None = None
    """The run whose first completed steps this run reuses (``fork_run``); None for others."""
    scheduled_at: datetime | None = None
    """The tick of the schedule that started this run; None for a run started otherwise."""
    parent_id: str | None = None
    """The run whose step started this one (a child workflow); None for a run started
    otherwise."""
    parent_step: str | None = None
    """The key of the parent's step that started this run and receives its result."""
    traceparent: str | None = None
    """The W3C traceparent of the span that started the run, the parent of its executions'
    spans (``core.tracing``); None for a run started without a trace."""

    @property
    def finished(self) -> bool:
        return self.status.finished


@dataclass(frozen=True, slots=True)
class StepRecord(Generic[Payload]):
    """A step. Backends fill every field from the ``steps`` column of the same name."""

    PAYLOADS: ClassVar[tuple[str, ...]] = ("output", "error")

    run_id: str
    key: str
    status: StepStatus
    output: Payload | None
    error: Payload | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    wake_at: datetime | None
    seq: int = 0
    """The step's place in its run's first-started order (``list_steps`` pages by it)."""
    child_id: str | None = None
    """The child run this step started (``run_workflow``, ``start_workflow``): the step sleeps
    until the child ends, then holds its output (completed) or why it did not succeed
    (failed). While it sleeps, ``wake_at`` None means nobody awaits it yet."""


@dataclass(frozen=True, slots=True)
class AttemptRecord(Generic[Payload]):
    """An attempt of a run that a manual retry closed: how it ended. Backends fill every field
    from the ``run_attempts`` column of the same name."""

    PAYLOADS: ClassVar[tuple[str, ...]] = ("error",)

    run_id: str
    attempt: int
    status: RunStatus
    error: Payload | None
    finished_at: datetime | None
    retried_at: datetime


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A line a run logged (``ctx.log``, or plain ``logging`` inside its steps), from the
    ``run_logs`` column of the same name. ``step`` is None for a line of the workflow body;
    ``attempt`` is then the workflow-level attempt, else the step's. ``dropped`` is set only
    on the marker that counts the lines dropped past the run's cap (its ``message`` is empty)."""

    run_id: str
    seq: int
    at: datetime
    level: int
    logger: str
    step: str | None
    attempt: int | None
    message: str
    dropped: int | None

    @property
    def text(self) -> str:
        """The message; for the marker, how many lines it stands for."""
        if self.dropped is None:
            return self.message
        return f"{self.dropped} more log line(s) dropped: the run reached its cap of log lines"


@dataclass(frozen=True, slots=True)
class ActiveRuns:
    """The runs of one workflow not finished yet (``Backend.active_runs``). ``due``: its
    pending and sleeping runs whose time has come, which a worker could claim now. A
    ``workflow`` of None gathers the workflows nobody declared known."""

    workflow: str | None
    pending: int
    running: int
    sleeping: int
    due: int


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    run: RunRecord
    lease_token: str
    steps: list[StepRecord]


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    workflow: str
    version: str | None
    input: str
    idempotency_key: str | None = None
    deadline_at: datetime | None = None
    available_at: datetime | None = None
    """None means now (database time)."""
    scheduled_at: datetime | None = None
    """The schedule's tick this run is for (a WorkflowSchedule's WorkflowRun)."""
    traceparent: str | None = None
    """The W3C traceparent of the span that starts the run (``RunRecord.traceparent``)."""


@dataclass(frozen=True, slots=True)
class NewChild:
    """Child run ``run``, started by step ``key`` of run ``parent_id`` held under ``token``.
    The child and the parent's step that will hold its result are stored together; the step
    sleeps until the child ends, awaited until ``wake_at`` when that is set (None: started
    only, see ``Backend.await_child``)."""

    token: str
    parent_id: str
    key: str
    run: NewRun
    wake_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleRecord(Generic[Payload]):
    """A schedule: runs of ``workflow`` with ``input``, one per tick of ``cron`` read in
    ``timezone``. Backends fill every field from the ``schedules`` column of the same name."""

    PAYLOADS: ClassVar[tuple[str, ...]] = ("input",)

    name: str
    workflow: str
    cron: str
    timezone: str
    input: Payload
    starting_deadline: float
    """How late (seconds) a tick may still fire; older missed ticks are skipped."""
    paused: bool
    next_fire_at: datetime
    """The next tick to fire (UTC); it may lie in the past while no worker has fired it."""
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """A schedule to create, or to update in place (its pause state is kept; its next tick is
    kept too unless ``cron`` or ``timezone`` changed)."""

    name: str
    workflow: str
    cron: str
    timezone: str
    input: str
    starting_deadline: float
    next_fire_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleTick:
    """Advance schedule ``name`` from ``due`` (the ``next_fire_at`` the caller read) to
    ``next_fire_at``, and if ``fire`` is set start the run of that tick, all at once and only
    if ``due`` still holds: of many workers that try the same tick, exactly one succeeds."""

    name: str
    due: datetime
    next_fire_at: datetime
    fire: datetime | None
    run_id: str
    idempotency_key: str
    version: str | None


@dataclass(frozen=True, slots=True)
class SignalRecord(Generic[Payload]):
    """A signal sent to a run, kept until a wait step of the run consumes it. Backends fill
    every field from the ``signals`` column of the same name."""

    PAYLOADS: ClassVar[tuple[str, ...]] = ("payload",)

    run_id: str
    seq: int
    """Send order: a wait takes the undelivered signal of its name with the lowest."""
    name: str
    payload: Payload
    idempotency_key: str | None
    sent_at: datetime
    delivered_to: str | None
    """The memo key of the wait step that received it; None while it waits in the buffer."""
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewSignal:
    run_id: str
    name: str
    payload: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class SignalWait:
    """Wait step ``key`` of the run held under ``token`` waits for signal ``name`` until
    ``wake_at`` (None: without a timeout); ``started_at``: when the wait began."""

    token: str
    run_id: str
    key: str
    name: str
    wake_at: datetime | None
    started_at: datetime


@dataclass(frozen=True, slots=True)
class RunPosition:
    """Where a run stands in ``list_runs`` order (newest first): a keyset cursor, which new
    runs never shift."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class RunFilter:
    workflow: str | None = None
    statuses: Sequence[RunStatus] = ()
    limit: int = 100
    after: RunPosition | None = None
    """Only runs that come after this position (the last run of the previous page)."""
    since: datetime | None = None
    """Only runs created at or after this moment."""
    until: datetime | None = None
    """Only runs created before this moment."""
    parent_id: str | None = None
    """Only the children of this run."""


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most ``concurrency`` runs of a workflow RUNNING at once across all workers: in all,
    or per value of the input's top-level field ``key`` (its JSON text for a non-string)."""

    concurrency: int
    key: str | None = None


@dataclass(frozen=True, slots=True)
class ConcurrencyUse:
    """A run's group under the limit in force for its workflow: the limit, the run's key
    (None for a workflow-wide limit) and how many runs of the group are RUNNING."""

    limit: ConcurrencyLimit
    key: str | None
    running: int


WORKER_LIVENESS_SECONDS = 90.0
"""A worker that has not heartbeated for this long no longer counts: it serves no workflow
(``serving_workers``), and its concurrency limits are no longer in force."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    hostname: str
    workflows: Sequence[str]
    concurrency: int
    limits: Mapping[str, ConcurrencyLimit] = field(default_factory=dict)
    """The concurrency limits this worker declares, by workflow. Claims obey, per workflow,
    the strictest limit any live worker declares (the smallest ``concurrency``; at equal
    ``concurrency`` a workflow-wide cap before a keyed one)."""
    versions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """The versions this worker serves of each workflow that has any, newest first
    (``core.versions``): a run pinned to a version is claimed only by a worker serving it."""


# ---- fenced writes, applied by ``Backend.write`` in one transaction -------------------------


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step attempt began (not awaited for durability: a lost start only re-runs the step)."""

    token: str
    run_id: str
    key: str
    attempts: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step attempt ended; ``status`` is COMPLETED (with output) or FAILED (with error).

    A FAILED write with retries left records the attempt count and error but the step is
    tried again; the final FAILED is what replay re-raises.
    """

    token: str
    run_id: str
    key: str
    status: StepStatus
    output: str | None
    error: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class StepSleeping:
    """A durable sleep was entered; the step completes once ``wake_at`` has passed.

    Stored with one attempt (an existing row keeps its count)."""

    token: str
    run_id: str
    key: str
    wake_at: datetime
    started_at: datetime


@dataclass(frozen=True, slots=True)
class FinishRun:
    """The run ends: SUCCEEDED (output), FAILED (error) or CANCELED. The lease is dropped."""

    token: str
    run_id: str
    status: RunStatus
    output: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SuspendRun:
    """The run waits for a durable sleep: status SLEEPING until ``available_at``, lease dropped."""

    token: str
    run_id: str
    available_at: datetime


@dataclass(frozen=True, slots=True)
class ReleaseRun:
    """Give the run back at once (graceful shutdown): status PENDING, available now."""

    token: str
    run_id: str


@dataclass(frozen=True, slots=True)
class RetryRun:
    """Workflow-level retry: PENDING at ``available_at``, ``attempt`` + 1, failed steps erased
    (so they run again), completed steps kept; ``error`` records why."""

    token: str
    run_id: str
    available_at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line the run logged, stored after its stored lines, at most ``max_records`` per run
    (then counted in one marker). A body line (``key`` None) is stored once per (``attempt``,
    ``ordinal``): a replay that logs it again stores nothing."""

    token: str
    run_id: str
    key: str | None
    attempt: int
    ordinal: int | None
    level: int
    logger: str
    message: str
    at: datetime
    max_records: int


WriteOp = (
    StepStarted
    | StepFinished
    | StepSleeping
    | FinishRun
    | SuspendRun
    | ReleaseRun
    | RetryRun
    | LogLine
)


@dataclass(slots=True)
class WriteResult:
    rejected: set[str] = field(default_factory=set)
    """Lease tokens whose ops were not applied: the run is no longer held under that token."""


class Watch(Protocol):
    """A subscription to run changes (steps written, status changed)."""

    async def next(self, timeout: float) -> set[str] | None:
        """Ids of runs changed since the last call, or None meaning "re-read everything".

        Returns an empty set when ``timeout`` passed with no change. A backend that cannot
        push (SQLite) returns None after a short poll interval instead.
        """
        ...

    async def __aenter__(self) -> Watch: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Backend(Protocol):
    """Storage for runs and steps. Async only; one instance is shared by a whole process."""

    display_url: str
    """The URL with any password hidden: safe for logs and error messages."""

    async def open(self) -> None:
        """Connect and apply pending migrations (under a lock: safe when many start at once).

        Raises ``DatabaseUnavailable`` naming ``display_url`` when the database is unreachable.
        """
        ...

    async def close(self) -> None: ...

    # ---- client side ----
    async def create_run(self, new: NewRun) -> tuple[RunRecord, bool]:
        """Insert a run; with an idempotency key already used for that workflow, return the
        existing run and False instead. Wakes idle workers."""
        ...

    async def create_runs(self, new: Sequence[NewRun]) -> list[tuple[RunRecord, bool]]:
        """``create_run`` for a batch, in one transaction and (Postgres) one round trip: what
        ``create_run`` returns for each, in the order given. A key repeated in the batch starts
        one run, which the later items return with False."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(self, query: RunFilter) -> list[RunRecord]:
        """Newest first: by ``created_at``, then ``id``, both descending."""
        ...

    async def count_runs(self, query: RunFilter) -> int:
        """How many runs ``query`` selects, ``limit`` and ``after`` aside."""
        ...

    async def active_runs(self, known: Sequence[str]) -> list[ActiveRuns]:
        """The runs not finished, per workflow, in one query over the claim's partial indexes
        (finished runs cost nothing). One entry for each workflow in ``known`` or registered
        by a worker (zeros included), then one (``workflow`` None) for all others together:
        the metrics' labels stay bounded whatever names runs were started with."""
        ...

    async def run_ids_between(self, low: str, high: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids from ``low`` to ``high`` (both canonical UUID text), in
        order: the runs whose id starts with a prefix, found through the primary key."""
        ...

    async def list_steps(
        self, run_id: str, *, after_seq: int | None = None, limit: int | None = None
    ) -> list[StepRecord]:
        """In the order the steps were first started; with ``after_seq``, only the steps after
        that ``seq``; at most ``limit`` of them."""
        ...

    async def cancel_run(self, run_id: str) -> RunRecord | None:
        """Mark an unfinished run CANCELED (its holder's next fenced write is rejected), and
        its steps in flight CANCELED too. A finished run is returned unchanged; an unknown id
        gives None."""
        ...

    async def expire_runs(self) -> int:
        """Fail unfinished runs whose deadline passed, with the error document
        ``{"type": "DeadlineExceeded", "message": …}`` (a run waiting for a workflow retry keeps
        its last attempt's error instead); their steps in flight become CANCELED. Returns how
        many runs."""
        ...

    def watch(self) -> Watch:
        """Subscribe to run changes; use as ``async with backend.watch() as w``."""
        ...

    async def resume_run(
        self, run_id: str, deadline_at: datetime | None
    ) -> tuple[RunRecord, bool] | None:
        """Start a FAILED or CANCELED run again (True), or return any other run unchanged
        (False); None for an unknown id. In one transaction: the ended attempt goes to the
        run's history (``list_attempts``), every step not COMPLETED is erased (it runs again,
        with a fresh attempt budget), and the run becomes PENDING with ``attempt`` + 1 and
        ``first_attempt`` = the new attempt. ``deadline_at`` replaces the deadline; None keeps
        one still ahead and drops one passed. The run is available only once the lease it was
        last claimed with has expired, so the worker that held a canceled run has stopped
        starting steps (``core.lease``) before another worker claims it."""
        ...

    async def list_attempts(self, run_id: str) -> list[AttemptRecord]:
        """The attempts of the run that ``resume_run`` closed, oldest first."""
        ...

    async def fork_run(self, new_id: str, source_id: str, from_step: str) -> RunRecord | None:
        """A new PENDING run ``new_id`` of the same workflow, version and input as
        ``source_id`` (``forked_from``), holding copies of the source's COMPLETED steps
        stored before step ``from_step`` (first-started order); None when no run
        ``source_id`` exists. Wakes idle workers."""
        ...

    async def prune_runs(self, older_than: float, limit: int) -> int:
        """Delete up to ``limit`` finished runs (with their steps and attempts) that finished
        more than ``older_than`` seconds ago, oldest first; how many. Runs locked by anyone
        else are skipped, so pruning never waits for (nor holds up) claims and writes."""
        ...

    # ---- schedules ----
    async def save_schedule(self, new: NewSchedule) -> ScheduleRecord:
        """Create the schedule, or update the one of that name (see ``NewSchedule``)."""
        ...

    async def get_schedule(self, name: str) -> ScheduleRecord | None: ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """By name."""
        ...

    async def pause_schedule(
        self, name: str, paused: bool, next_fire_at: datetime
    ) -> ScheduleRecord | None:
        """Pause or resume; resuming moves the next tick to ``next_fire_at`` (ticks due while
        paused never fire). None: no such schedule."""
        ...

    async def delete_schedule(self, name: str) -> bool:
        """Whether a schedule of that name existed; its runs stay."""
        ...

    async def due_schedules(self, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules whose next tick has come, earliest first."""
        ...

    async def next_tick_at(self) -> datetime | None:
        """The earliest next tick of any unpaused schedule."""
        ...

    async def fire_schedule(self, tick: ScheduleTick) -> str | None:
        """Apply ``tick`` (see ``ScheduleTick``); the id of the run it started, or None when it
        started none (another worker applied it first, or the tick was skipped). Wakes idle
        workers when it starts one."""
        ...

    # ---- signals ----
    async def send_signal(self, new: NewSignal) -> tuple[SignalRecord, bool]:
        """Store a signal for its run (True), or return the one stored under its idempotency
        key for that run (False). In one transaction that locks the run: ``RunNotFound``,
        ``RunFinished`` for a finished run; a parked run with a step waiting for that name is
        made due (the ``wake_run`` query, the one way to wake a parked run)."""
        ...

    async def list_signals(self, run_id: str) -> list[SignalRecord]:
        """In send order."""
        ...

    async def receive_signal(self, wait: SignalWait) -> StepRecord | None:
        """Fenced like a write, in one transaction: the wait step consumes the oldest
        undelivered signal of its name and is stored COMPLETED with its payload; without one it
        is stored COMPLETED with ``null`` once ``wake_at`` passed, else SLEEPING (waiting). A
        step already completed is returned unchanged. None: the lease is no longer held.

        A run that parks while a signal its waiting step wants is buffered is due at once
        (migration 0008), so a signal sent while the run was running is never left behind."""
        ...

    # ---- worker side ----
    async def register_worker(self, worker: WorkerInfo) -> None: ...

    async def unregister_worker(self, worker_id: str) -> None: ...

    async def serving_workers(
        self, workflow: str, within_seconds: float, version: str | None = None
    ) -> int:
        """How many workers that heartbeated within ``within_seconds`` serve ``workflow`` (at
        ``version``, when given)."""
        ...

    async def served_versions(self, workflow: str, within_seconds: float) -> list[str]:
        """The versions of ``workflow`` served by workers that heartbeated within
        ``within_seconds``, in no particular order."""
        ...

    async def concurrency_use(self, run_id: str) -> ConcurrencyUse | None:
        """The concurrency group of the run (see ``WorkerInfo.limits``) and how full it is;
        None when no limit is in force for its workflow, or no run has that id."""
        ...

    async def claim_runs(
        self, worker_id: str, workflows: Sequence[str], limit: int, lease_seconds: float
    ) -> list[ClaimedRun]:
        """Atomically take up to ``limit`` runs of the given workflows that are PENDING or
        SLEEPING and available, or RUNNING with an expired lease; each gets a new token and a
        lease of ``lease_seconds``; each comes with its stored steps.

        Concurrency limits (``WorkerInfo.limits``) hold across all claimers: a due run is taken
        only while fewer than N runs of its group are RUNNING; taking over an expired lease
        keeps the run's own slot (its old holder may still be running).

        Versions (``WorkerInfo.versions`` of ``worker_id``, registered before it claims): a run
        pinned to a version is taken only if the worker serves that version; an unpinned run
        (version None) is pinned to the newest version the worker serves of its workflow, if
        any."""
        ...

    async def heartbeat(
        self, worker_id: str, tokens: Sequence[str], lease_seconds: float
    ) -> set[str]:
        """Extend the leases of the runs held under ``tokens`` and the worker's own heartbeat;
        return the tokens no longer held (run canceled, or claimed by another worker)."""
        ...

    async def start_child(self, child: NewChild) -> RunRecord | None:
        """Store ``child`` (see ``NewChild``), fenced by the parent's token, in one
        transaction; when the parent's step exists already, store nothing and return the child
        it started. None: the parent is no longer held under the token. Wakes idle workers.

        When a child ends (however: finished, failed, canceled, expired), the transaction that
        ends it stores its result in the parent's step and, if the parent sleeps awaiting it
        and no other child it awaits is still running, makes the parent due at once (a parent
        running then is made due when it next goes to sleep). Canceling a run cancels its
        unfinished children, and theirs."""
        ...

    async def await_child(
        self, token: str, parent_id: str, key: str, wake_at: datetime
    ) -> StepRecord | None:
        """Mark the sleeping child step ``key`` of run ``parent_id`` awaited until ``wake_at``,
        fenced by the parent's token; return the step as stored then (its result, if the child
        has ended). None: the parent is no longer held under the token."""
        ...

    async def list_logs(self, run_id: str, after: int, limit: int) -> list[LogEntry]:
        """The run's log lines after seq ``after``, in order, at most ``limit``."""
        ...

    async def last_logs(self, run_id: str, limit: int) -> list[LogEntry]:
        """The run's last ``limit`` log lines, in order."""
        ...

    async def record_warning(self, token: str, run_id: str, warning: str) -> bool:
        """Store ``warning`` (JSON) on the run, fenced like a write: only while the run is held
        under ``token``; returns whether it was stored."""
        ...

    async def write(self, ops: Sequence[WriteOp]) -> WriteResult:
        """Apply all ops in one transaction, in order, each fenced by its token."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be claimable (a run created, released or due), or after
        ``timeout``. Postgres answers with LISTEN/NOTIFY, SQLite by polling."""
        ...


def opened(handle: _T | None, display_url: str) -> _T:
    """``handle`` (a pool, a connection, a listener), which exists only while the backend for
    ``display_url`` is open: calling a backend before ``open`` or after ``close`` is a bug."""
    if handle is None:
        raise RuntimeError(f"the backend for {display_url} is not open")
    return handle
