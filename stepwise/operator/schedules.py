"""The kopf handler of ``WorkflowSchedule``: a timer that creates the WorkflowRuns of its
ticks, as the CronJob controller creates Jobs.

Every ``INTERVAL`` seconds, per schedule, ``plan`` (pure) decides from the schedule, its
status and the WorkflowRuns it owns what to do, and the timer does it:

* The latest tick at or before now starts a run if it is newer than the last one started or
  missed. Only the latest missed tick ever starts (CronJob's rule); past
  ``startingDeadlineSeconds`` it is missed instead. ``Forbid`` makes it wait while a run is
  active; ``Replace`` deletes the active runs (their runs are canceled) first.
* A tick's WorkflowRun is named ``<schedule>-<tick in Unix seconds>`` and owned by the
  schedule (ownerReference, label ``stepwise.dev/schedule``): creating it twice is a 409,
  so a tick makes one WorkflowRun however often the operator restarts; its uid then makes one
  run. Its annotation ``stepwise.dev/scheduled-at`` holds the tick, which reaches the run as
  ``ctx.scheduled_at``.
* Finished runs past ``successfulRunsHistoryLimit`` / ``failedRunsHistoryLimit`` are
  deleted, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from stepwise.errors import InvalidArgument
from stepwise.operator import handlers, models
from stepwise.operator.kubeapi import ObjectRef
from stepwise.operator.schedule_models import (
    KIND,
    PLURAL,
    SCHEDULE_LABEL,
    SCHEDULED_AT_ANNOTATION,
    ConcurrencyPolicy,
    WorkflowScheduleSpec,
)

RESOURCE = (models.GROUP, models.VERSION, PLURAL)
INTERVAL = 1.0
"""Seconds between two looks at a schedule: how late a tick may start, at most."""
_FINISHED = {models.Phase.SUCCEEDED.value, models.Phase.FAILED.value, models.Phase.CANCELED.value}


@dataclass(frozen=True)
class OwnedRun:
    name: str
    uid: str
    tick: datetime
    phase: str | None

    @property
    def finished(self) -> bool:
        return self.phase in _FINISHED


@dataclass
class Plan:
    create: datetime | None = None
    """The tick whose WorkflowRun to create."""
    missed: datetime | None = None
    delete: list[OwnedRun] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)


def run_name(schedule: str, tick: datetime) -> str:
    return f"{schedule}-{int(tick.timestamp())}"


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: Any) -> datetime | None:
    return None if not text else datetime.fromisoformat(str(text))


def plan(
    name: str,
    spec: WorkflowScheduleSpec,
    status: dict[str, Any],
    created_at: datetime,
    runs: list[OwnedRun],
    now: datetime,
) -> Plan:
    """What the timer does now; see the module docstring."""
    timetable = spec.timetable()
    result = Plan()
    last_scheduled = _moment(status.get("lastScheduleTime"))
    last_missed = _moment(status.get("lastMissedTime"))
    handled = max((t for t in (last_scheduled, last_missed) if t), default=created_at)
    latest = timetable.latest_at_or_before(now)
    active = [run for run in runs if not run.finished]
    if latest > handled and not spec.suspend:
        late = (now - latest).total_seconds()
        deadline = spec.starting_deadline_seconds
        if deadline is not None and late > deadline:
            result.missed = last_missed = latest
        elif spec.concurrency_policy is ConcurrencyPolicy.FORBID and active:
            pass  # the tick waits for the active runs (until its deadline)
        else:
            if spec.concurrency_policy is ConcurrencyPolicy.REPLACE:
                result.delete.extend(active)
                active = []
            result.create = last_scheduled = latest
    finished = sorted((run for run in runs if run.finished), key=lambda run: run.tick)
    succeeded = [run for run in finished if run.phase == models.Phase.SUCCEEDED.value]
    failed = [run for run in finished if run.phase != models.Phase.SUCCEEDED.value]
    for kept, limit in (
        (succeeded, spec.successful_runs_history_limit),
        (failed, spec.failed_runs_history_limit),
    ):
        result.delete.extend(kept[: max(len(kept) - limit, 0)])
    names = sorted(run.name for run in active)
    if result.create is not None:
        names.append(run_name(name, result.create))
    last_successful = _moment(status.get("lastSuccessfulTime"))
    if succeeded:
        last_successful = max(succeeded[-1].tick, last_successful or succeeded[-1].tick)
    result.status = {
        "active": names or None,
        "activeCount": len(names),
        "lastScheduleTime": _text(last_scheduled),
        "lastSuccessfulTime": _text(last_successful),
        "lastMissedTime": _text(last_missed),
        "nextScheduleTime": None if spec.suspend else _text(timetable.next_after(now)),
        "message": None,
    }
    return result


def _owned(item: dict[str, Any], owner_uid: str) -> OwnedRun | None:
    meta = item.get("metadata") or {}
    if not any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or []):
        return None
    tick = _moment((meta.get("annotations") or {}).get(SCHEDULED_AT_ANNOTATION))
    if tick is None:
        return None
    phase = (item.get("status") or {}).get("phase")
    return OwnedRun(meta["name"], meta["uid"], tick, phase)


def manifest(name: str, uid: str, spec: WorkflowScheduleSpec, tick: datetime) -> dict[str, Any]:
    """The WorkflowRun of ``tick``, owned by the schedule ``name`` (``uid``)."""
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {
            "name": run_name(name, tick),
            "labels": {SCHEDULE_LABEL: name},
            "annotations": {SCHEDULED_AT_ANNOTATION: _text(tick)},
            "ownerReferences": [
                {
                    "apiVersion": models.API_VERSION,
                    "kind": KIND,
                    "name": name,
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {"workflow": spec.workflow, "input": spec.input},
    }


@kopf.timer(*RESOURCE, interval=INTERVAL, registry=handlers.registry)
async def tick(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    uid: str,
    patch: kopf.Patch,
    memo: handlers.OperatorState,
    **_: Any,
) -> None:
    namespace = str(namespace)  # WorkflowSchedules are namespaced
    try:
        parsed = WorkflowScheduleSpec.model_validate(dict(spec))
        parsed.timetable()
    except (ValidationError, InvalidArgument) as exc:
        message = str(exc).splitlines()[0] if isinstance(exc, InvalidArgument) else str(exc)
        if status.get("message") != message:
            patch.status["message"] = message
            kopf.warn(body, reason="InvalidSchedule", message=message)
        return
    kube = memo.mirror.kube
    listed = await kube.list_runs(namespace, f"{SCHEDULE_LABEL}={name}")
    runs = [run for run in (_owned(item, uid) for item in listed) if run is not None]
    created = datetime.fromisoformat(str(meta["creationTimestamp"]))
    now = datetime.now(UTC)
    todo = plan(name, parsed, dict(status), created, runs, now)
    for run in todo.delete:
        await kube.delete(ObjectRef(namespace, run.name, run.uid))
    if todo.create is not None:
        made = await kube.create(namespace, manifest(name, uid, parsed, todo.create))
        if made:
            kopf.info(body, reason="Scheduled", message=f"created {run_name(name, todo.create)}")
    if todo.missed is not None:
        late = timedelta(seconds=(now - todo.missed).total_seconds())
        kopf.warn(body, reason="MissedSchedule", message=f"missed the tick {_text(todo.missed)} "
                  f"({late} late, past startingDeadlineSeconds)")  # fmt: skip
    for key, value in todo.status.items():
        if status.get(key) != value:
            patch.status[key] = value
