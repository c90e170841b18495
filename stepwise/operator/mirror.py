"""Follow the database and keep every WorkflowRun's status a faithful, cheap mirror of its run.

One task serves the whole operator (a kopf daemon per resource would be thousands of tasks):

* kopf's event handler tells the mirror which resources exist (``observe``/``forget``): the
  run id is the resource's uid, so run id → (namespace, name) is a dict lookup;
* a resource whose final status is written, and that asks for nothing more (no TTL, no new
  retry value), is let go once its watch event shows that write: of it the mirror keeps only
  its name (``_released``, about as much as kopf itself keeps per resource, and gone with the
  resource), not its status, so the operator's memory follows the unfinished runs; the
  resource's next event (a retry annotation, a delete) brings it back as it is then, and so
  does a change of its run in the database (``stepwise runs retry``, the dashboard): the
  mirror reads the resource again (one LIST by name) and follows it until it is finished;
* ``backend.watch()`` (Postgres LISTEN/NOTIFY) names the runs that changed; those that belong
  to a resource are *marked*;
* a marked resource is *refreshed* (run + steps read, status built, patched if it changed) no
  sooner than ``min_interval`` after its previous refresh: a burst of step completions costs
  one patch per resource per interval, never one per step;
* every ``resync_interval`` (and whenever the watch says "re-read everything", e.g. after a
  reconnect) every unfinished resource is marked: the fallback when a notification is lost,
  and how status catches up after the operator was down;
* a finished resource with ``ttlSecondsAfterFinished`` is deleted when its time comes;
* a new value of the ``stepwise.dev/retry`` annotation retries the run, once per value: the
  value handled is kept in the status (``retryRequest``), so a restart does not act again;
* a child run that a run's step started gets a WorkflowRun of its own, owned by the parent's
  (``children``): it mirrors that run (``stepwise.dev/run-id``) instead of its uid.

The status the mirror last wrote is kept per resource, so "changed" is decided without asking
the API server; the mirror is the only writer of the status (kopf's bookkeeping lives in
annotations), so what kopf saw when the operator started plus what the mirror wrote since is
the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stepwise.backends.base import StepRecord
from stepwise.backoff import Backoff
from stepwise.client.client import Client
from stepwise.errors import RunNotFound, RunNotRetryable, StepwiseError
from stepwise.operator import children
from stepwise.operator import status as status_mod
from stepwise.operator.kubeapi import KubeApi, KubeError, NotFound, ObjectRef
from stepwise.operator.models import RETRY_ANNOTATION, RUN_ID_ANNOTATION, Phase

log = logging.getLogger("stepwise.operator")

MIN_INTERVAL = 0.5
RESYNC_INTERVAL = 15.0
CONCURRENCY = 32
RETRY_BACKOFF = Backoff(initial=0.5, cap=5.0)
"""Waits before the database watch is opened again, and before a failed refresh is retried."""

_ANNOUNCED = {
    Phase.SUCCEEDED.value: False,
    Phase.FAILED.value: True,
    Phase.CANCELED.value: False,
}
"""Phases that get an Event when a run reaches them, and whether it is a Warning."""


_FINAL = frozenset(phase.value for phase in Phase if phase.finished)


@dataclass(slots=True)
class Tracked:
    """What the mirror knows about one WorkflowRun."""

    ref: ObjectRef
    generation: int | None
    ttl: int | None
    status: dict[str, Any]
    """The resource's status as last seen (on first sight) or last written by the mirror."""
    deleting: bool = False
    retry: str | None = None
    """The value of the retry annotation, as last seen."""
    retried: str | None = None
    """The value of the retry annotation last acted on (the status' ``retryRequest``)."""
    run_id: str = ""
    """The run mirrored: the uid, or a child run's id (``stepwise.dev/run-id``)."""
    children: set[str] = field(default_factory=set)
    """The child runs whose WorkflowRuns this operator created (or found) since it started."""
    written: str | None = None
    """The ``resourceVersion`` of the mirror's last status write; ``seen``: of the last event."""
    seen: str = ""

    @property
    def retry_wanted(self) -> bool:
        return self.retry is not None and self.retry != self.retried and not self.deleting

    @property
    def finished(self) -> bool:
        return self.status.get("phase") in _FINAL


@dataclass(frozen=True, slots=True)
class Released:
    """What the mirror keeps of a finished resource it let go: where it is, and its run."""

    ref: ObjectRef
    run_id: str


class _Timeline:
    """Resources due at monotonic times; the due ones come out in time order, in O(log n)
    each (a heap with stale entries skipped), however many thousands are waiting."""

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __contains__(self, uid: object) -> bool:
        return uid in self._at

    def __len__(self) -> int:
        return len(self._at)

    def add(self, uid: str, at: float) -> None:
        self._at[uid] = at
        heapq.heappush(self._heap, (at, uid))

    def discard(self, uid: str) -> None:
        self._at.pop(uid, None)

    def next_at(self) -> float | None:
        while self._heap and self._at.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[str]:
        due = []
        while (at := self.next_at()) is not None and at <= now:
            _, uid = heapq.heappop(self._heap)
            del self._at[uid]
            due.append(uid)
        return due


class Mirror:
    def __init__(
        self,
        client: Client,
        kube: KubeApi,
        *,
        min_interval: float = MIN_INTERVAL,
        resync_interval: float = RESYNC_INTERVAL,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.client = client
        self.kube = kube
        self.min_interval = min_interval
        self.resync_interval = resync_interval
        self._limit = asyncio.Semaphore(concurrency)
        self._tracked: dict[str, Tracked] = {}
        self._uids: dict[str, str] = {}
        """Run id → uid of the resources whose run id is not their uid (children's)."""
        self._released: dict[str, Released] = {}
        """The finished resources let go, by uid: their run may still change (a retry)."""
        self._reviving: set[str] = set()
        self._due = _Timeline()
        """When marked resources are refreshed."""
        self._last: dict[str, float] = {}
        """When each unfinished resource was last refreshed."""
        self._failures = 0
        """Refreshes and expiries failed in a row: the database or the API server is away."""
        self._expiry = _Timeline()
        """When finished resources with a TTL are deleted."""
        self._busy: set[str] = set()
        """Resources with a refresh in flight; ``_again``: marked meanwhile."""
        self._again: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self.refreshes = 0

    # ---- what kopf sees --------------------------------------------------------------------

    def observe(self, body: Mapping[str, Any], *, follow: bool = False) -> None:
        """A watch event of a WorkflowRun (not a deletion): learn it, or update what may
        change (generation, ttl, deletion); the status is taken only on first sight. A
        finished resource with nothing left to do (no retry asked, no TTL) is let go, unless
        ``follow`` (its run changed: it is kept until a refresh has shown what changed)."""
        meta = body["metadata"]
        uid = str(meta["uid"])
        spec = body.get("spec") or {}
        tracked = self._tracked.get(uid)
        if tracked is None:
            ref = ObjectRef(str(meta["namespace"]), str(meta["name"]), uid)
            run_id = (meta.get("annotations") or {}).get(RUN_ID_ANNOTATION, uid)
            if run_id != uid:
                self._uids[run_id] = uid
            if _settled(body) and not follow:
                self._released[uid] = Released(ref, run_id)
                return
            self._released.pop(uid, None)
            tracked = Tracked(
                ref=ref,
                generation=meta.get("generation"),
                ttl=spec.get("ttlSecondsAfterFinished"),
                status=copy.deepcopy(dict(body.get("status") or {})),
                run_id=run_id,
            )
            tracked.retried = tracked.status.get("retryRequest")
            self._tracked[uid] = tracked
            if tracked.status.get("runId") and not tracked.finished:
                self.mark(uid)  # catch up after a restart
        tracked.generation = meta.get("generation")
        tracked.ttl = spec.get("ttlSecondsAfterFinished")
        tracked.deleting = meta.get("deletionTimestamp") is not None
        tracked.retry = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
        if tracked.retry_wanted and tracked.status.get("runId"):
            self.mark(uid)
        self._schedule_expiry(tracked)
        tracked.seen = str(meta.get("resourceVersion", ""))
        if not follow:
            self._release(uid)

    def _release(self, uid: str) -> None:
        """Stop following a resource that needs nothing more: finished, with no retry asked,
        no TTL to serve and no refresh due, whose last event showed the mirror's last status
        write (so no older event, with an older status or annotation, can still come). Its
        next event brings it back if it asks for something (``observe``)."""
        tracked = self._tracked.get(uid)
        if tracked is None or not tracked.finished or tracked.retry_wanted:
            return
        if tracked.ttl is not None or uid in self._due or uid in self._busy:
            return
        if tracked.written is None or _not_older(tracked.seen, tracked.written):
            del self._tracked[uid]
            self._released[uid] = Released(tracked.ref, tracked.run_id)
            self._expiry.discard(uid)
            self._last.pop(uid, None)

    def forget(self, uid: str) -> None:
        """The resource is gone."""
        known = self._tracked.pop(uid, None) or self._released.pop(uid, None)
        if known is not None:
            self._uids.pop(known.run_id, None)
        self._due.discard(uid)
        self._expiry.discard(uid)
        self._last.pop(uid, None)

    def mark(self, uid: str, *, delay: float = 0.0) -> None:
        """Refresh this resource (named by its uid or by the id of its run) in ``delay``
        seconds, or ``min_interval`` after its last refresh if that is later; a resource
        already marked keeps its time."""
        uid = self._uids.get(uid, uid)
        if uid in self._released:
            self._revive(uid)
            return
        if uid not in self._tracked or uid in self._due:
            return
        at = time.monotonic() + delay
        last = self._last.get(uid)
        self._due.add(uid, at if last is None else max(at, last + self.min_interval))
        self._wake.set()

    def mark_unfinished(self) -> None:
        for uid, tracked in self._tracked.items():
            if not tracked.finished and not tracked.deleting:
                self.mark(uid)

    def _revive(self, uid: str) -> None:
        """The run of a resource let go changed: read the resource again and follow it."""
        if self._tasks is None or uid in self._reviving:
            return
        self._reviving.add(uid)
        self._tasks.create_task(self._read_again(uid))

    async def _read_again(self, uid: str) -> None:
        """Until it is read (the API server may be away), unless it is deleted or comes
        back through an event of its own meanwhile."""
        failures = 0
        try:
            while (released := self._released.get(uid)) is not None:
                ref = released.ref
                try:
                    async with self._limit:
                        found = await self.kube.list_runs(
                            ref.namespace, field_selector=f"metadata.name={ref.name}"
                        )
                except KubeError as exc:
                    failures += 1
                    delay = RETRY_BACKOFF.delay(failures)
                    log.warning(
                        "could not read %s/%s (%s); retrying in %.1fs",
                        ref.namespace, ref.name, exc, delay,
                    )  # fmt: skip
                    await asyncio.sleep(delay)
                    continue
                body = next((b for b in found if b["metadata"]["uid"] == uid), None)
                if body is None:
                    self.forget(uid)
                else:
                    del self._released[uid]
                    self.observe(body, follow=True)
                    self.mark(uid)
                return
        finally:
            self._reviving.discard(uid)

    def stats(self) -> dict[str, Any]:
        return {
            "tracked": len(self._tracked),
            "released": len(self._released),
            "marked": len(self._due),
            "expiring": len(self._expiry),
            "refreshes": self.refreshes,
            "requests": dict(self.kube.requests),
        }

    # ---- the loops -------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the database and serve the schedule until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            tasks.create_task(self._follow(), name="stepwise mirror: follow the database")
            tasks.create_task(self._serve(), name="stepwise mirror: refresh and expire")

    def announce(self, ref: ObjectRef, *, reason: str, message: str, warning: bool) -> None:
        """Post an Event in the background: it never holds up a status write or a handler."""
        if self._tasks is None:
            raise RuntimeError("the mirror is not running")
        self._tasks.create_task(
            self.kube.post_event(ref, reason=reason, message=message, warning=warning)
        )

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                async with self.client.watch() as watch:
                    failures = 0
                    self.mark_unfinished()  # changes may have passed while not subscribed
                    resynced = time.monotonic()
                    while True:
                        changed = await watch.next(self.resync_interval)
                        if changed is None or time.monotonic() - resynced >= self.resync_interval:
                            self.mark_unfinished()
                            resynced = time.monotonic()
                        for run_id in changed or ():
                            self.mark(run_id)
            except (StepwiseError, OSError) as exc:
                failures += 1
                delay = RETRY_BACKOFF.delay(failures)
                log.warning("lost the database watch (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _serve(self) -> None:
        """Start each due refresh and expiry as its own task (at most ``concurrency`` run at
        once, never two refreshes of one resource), so a slow one holds up nothing else."""
        while True:
            now = time.monotonic()
            for uid in self._due.pop_due(now):
                if uid in self._busy:
                    self._again.add(uid)
                else:
                    self._busy.add(uid)
                    self._last[uid] = now
                    self._start(self._refresh, uid, self._due)
            for uid in self._expiry.pop_due(now):
                self._start(self._expire, uid, self._expiry)
            upcoming = [t for t in (self._due.next_at(), self._expiry.next_at()) if t is not None]
            self._wake.clear()
            timeout = max(min(upcoming) - now, 0.0) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _start(self, action: Callable[[str], Awaitable[None]], uid: str, retry: _Timeline) -> None:
        assert self._tasks is not None  # only called from _serve, under run()
        self._tasks.create_task(self._guarded(action, uid, retry))

    async def _guarded(
        self, action: Callable[[str], Awaitable[None]], uid: str, retry: _Timeline
    ) -> None:
        """Run ``action``; when the database or the API server fails it, try again later."""
        try:
            async with self._limit:
                await action(uid)
            self._failures = 0
        except NotFound:
            self.forget(uid)
        except (StepwiseError, KubeError) as exc:
            self._failures += 1
            delay = RETRY_BACKOFF.delay(self._failures)
            log.warning("could not mirror run %s (%s); retrying in %.1fs", uid, exc, delay)
            if uid in self._tracked and uid not in retry:
                retry.add(uid, time.monotonic() + delay)
        finally:
            self._busy.discard(uid)
            if uid in self._again:
                self._again.discard(uid)
                self.mark(uid)
            self._release(uid)
            self._wake.set()

    # ---- one resource ----------------------------------------------------------------------

    async def _refresh(self, uid: str) -> None:
        tracked = self._tracked.get(uid)
        if tracked is None or tracked.deleting:
            return
        if tracked.retry_wanted:
            await self._retry(tracked)
        stored = await self.client.stored(tracked.run_id)
        if stored is None:
            return  # the create handler has not started it yet; it marks it when it has
        record, steps = stored
        await self._adopt_children(tracked, steps)
        reason = await self.client.waiting_reason(record)
        logs = await self.client.log_tail(record.id, status_mod.LOG_TAIL_LINES)
        self.refreshes += 1
        new = status_mod.build(
            record,
            steps,
            previous=tracked.status,
            generation=tracked.generation,
            waiting_reason=reason,
            now=datetime.now(UTC),
            logs=logs,
        )
        if tracked.retried is not None:
            new["retryRequest"] = tracked.retried
        if new == tracked.status:
            return
        tracked.written = await self.kube.replace_status(tracked.ref, new)
        before = tracked.status.get("phase")
        tracked.status = new
        phase = new["phase"]
        if phase != before:
            _log_phase(tracked.ref, record.id, record.workflow, phase)
        if phase in _ANNOUNCED and phase != before:
            self.announce(tracked.ref, reason=phase, message=_story(new), warning=_ANNOUNCED[phase])
        if tracked.finished:
            self._last.pop(uid, None)
            self._schedule_expiry(tracked)

    async def _retry(self, tracked: Tracked) -> None:
        """Act on a new value of the retry annotation: retry the run, or say in a Warning why
        it cannot be; either way that value is handled."""
        value, uid = tracked.retry, tracked.ref.uid
        why = f"{RETRY_ANNOTATION}={value}"
        try:
            run = await self.client.retry(tracked.run_id)
        except (RunNotRetryable, RunNotFound) as exc:
            self.announce(tracked.ref, reason="RetryRefused", message=f"{why}: {exc}", warning=True)
        else:
            log.info("retrying run %s of %s/%s (%s)", uid, *_where(tracked), why)
            message = f"retrying run {run.id} from where it stopped (attempt {run.attempt}, {why})"
            self.announce(tracked.ref, reason="Retried", message=message, warning=False)
            self._expiry.discard(uid)
        tracked.retried = value

    async def _adopt_children(self, tracked: Tracked, steps: list[StepRecord]) -> None:
        """Give each child run that a step of this run started a WorkflowRun of its own, owned
        by this one: ``kubectl get wfr`` lists it, and deleting this one deletes it. Created
        once (by name: a restarted operator finds it there)."""
        for step in steps:
            if step.child_id is None or step.child_id in tracked.children:
                continue
            child = await self.client.find(step.child_id)
            if child is None:
                continue  # pruned already
            body = children.resource(tracked.ref, child)
            if await self.kube.create(tracked.ref.namespace, body):
                log.info(
                    "created WorkflowRun %s for child run %s", body["metadata"]["name"], child.id
                )
            tracked.children.add(step.child_id)

    def _schedule_expiry(self, tracked: Tracked) -> None:
        uid = tracked.ref.uid
        if tracked.ttl is None or not tracked.finished or tracked.deleting:
            return
        if uid in self._expiry or "finishedAt" not in tracked.status:
            return
        # finishedAt is in whole seconds, rounded down: count from the end of that second,
        # so a resource never goes before its time (at most a second after).
        finished = datetime.fromisoformat(tracked.status["finishedAt"]) + timedelta(seconds=1)
        left = tracked.ttl - (datetime.now(UTC) - finished).total_seconds()
        self._expiry.add(uid, time.monotonic() + max(left, 0.0))
        self._wake.set()

    async def _expire(self, uid: str) -> None:
        tracked = self._tracked.get(uid)
        if tracked is None or tracked.deleting or not tracked.finished:
            return  # gone, going, or retried since its expiry was scheduled
        log.info("deleting %s/%s: finished %ss ago", *_where(tracked), tracked.ttl)
        await self.kube.delete(tracked.ref)


def _settled(body: Mapping[str, Any]) -> bool:
    """A finished WorkflowRun that asks for nothing: no new retry value, no TTL."""
    status = body.get("status") or {}
    meta = body["metadata"]
    retry = (meta.get("annotations") or {}).get(RETRY_ANNOTATION)
    wanted = retry is not None and retry != status.get("retryRequest")
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    return status.get("phase") in _FINAL and not wanted and ttl is None


def _not_older(version: str, than: str) -> bool:
    """Whether resourceVersion ``version`` is ``than`` or later (etcd's are integers; any
    other kind can only be compared for equality)."""
    try:
        return int(version) >= int(than)
    except ValueError:
        return version == than


def _story(status: Mapping[str, Any]) -> str:
    """The Event message of a finished run."""
    took = f" in {status['duration']}" if "duration" in status else ""
    if status["phase"] == Phase.SUCCEEDED:
        return f"run {status['runId']} succeeded{took} ({status['steps']} steps)"
    if status["phase"] == Phase.FAILED:
        return f"run {status['runId']} failed{took}: {status.get('message', '')}"
    return f"run {status['runId']} was canceled"


def _log_phase(ref: ObjectRef, run_id: str, workflow: str, phase: str) -> None:
    """One line each time a WorkflowRun's run reaches a phase (Failed at WARNING), with
    ``run_id``, ``workflow``, ``action`` (``run_<phase>``) and ``resource`` as the record's
    fields, for JSON logs."""
    level = logging.WARNING if phase == Phase.FAILED.value else logging.INFO
    resource = f"{ref.namespace}/{ref.name}"
    fields = {
        "run_id": run_id,
        "workflow": workflow,
        "action": f"run_{phase.lower()}",
        "resource": resource,
    }
    log.log(level, "[%s] run %s (workflow %s) %s", resource, run_id, workflow, phase, extra=fields)


def _where(tracked: Tracked) -> tuple[str, str]:
    return tracked.ref.namespace, tracked.ref.name
