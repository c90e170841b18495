"""A run and its steps → the ``WorkflowRun`` status: pure, so every rule here is unit-tested.

The status is a *capped* summary: the per-step list, the output and error texts have fixed
limits, so a run with thousands of steps or a large result never pushes a resource towards
etcd's size limit (results stay in the database). The status is also *stable*: building it
twice from the same run gives the same dict (condition times carry over while a condition
holds, nothing depends on the clock otherwise), which is what lets the mirror skip a patch
when nothing changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from stepwise.backends.base import LogEntry, RunRecord, RunStatus, StepRecord, StepStatus
from stepwise.client.client import SLOT_WAIT
from stepwise.core import runlog, tracebacks
from stepwise.operator.models import (
    Condition,
    ConditionStatus,
    Phase,
    RunError,
    StepCounts,
    StepState,
    StepSummary,
    WorkflowRunStatus,
)

MAX_STEP_DETAILS = 20
MAX_OUTPUT_BYTES = 4096
OUTPUT_PREVIEW_CHARS = 1024
MAX_ERROR_CHARS = 1024
MAX_STEP_ERROR_CHARS = 256
MAX_MESSAGE_CHARS = 256
MAX_NAMED_STEPS = 3
LOG_TAIL_LINES = 10
MAX_LOG_LINE_CHARS = 200

PHASES = {
    RunStatus.PENDING: Phase.PENDING,
    RunStatus.RUNNING: Phase.RUNNING,
    RunStatus.SLEEPING: Phase.SLEEPING,
    RunStatus.SUCCEEDED: Phase.SUCCEEDED,
    RunStatus.FAILED: Phase.FAILED,
    RunStatus.CANCELED: Phase.CANCELED,
}
_STATES: dict[StepStatus, StepState] = {
    StepStatus.RUNNING: "Running",
    StepStatus.SLEEPING: "Sleeping",
    StepStatus.COMPLETED: "Completed",
    StepStatus.FAILED: "Failed",
    StepStatus.CANCELED: "Canceled",
}

NO_WORKER = "NoWorker"
FINISHED, SUCCEEDED, WORKER_AVAILABLE = "Finished", "Succeeded", "WorkerAvailable"
DIVERGED = "Diverged"
"""Present (True) once a replay of the run diverged from its stored history."""


def build(
    run: RunRecord,
    steps: Sequence[StepRecord],
    *,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    waiting_reason: str | None,
    now: datetime,
    logs: Sequence[LogEntry] = (),
) -> dict[str, Any]:
    """The status of a resource whose run is ``run``, as the JSON the API server stores.

    ``previous`` is the status the resource has now (condition times carry over from it),
    ``waiting_reason`` what ``Client.waiting_reason`` said about a pending run, ``now`` the
    time a condition that changes now gets, ``logs`` the run's last log lines (the last
    ``LOG_TAIL_LINES`` are shown, each its first line, cut to ``MAX_LOG_LINE_CHARS``).
    """
    phase = PHASES[run.status]
    scheduled = run.available_at if phase is Phase.PENDING and run.available_at > now else None
    counts = StepCounts(
        started=len(steps),
        completed=_count(steps, StepStatus.COMPLETED),
        running=_count(steps, StepStatus.RUNNING),
        sleeping=_count(steps, StepStatus.SLEEPING),
        failed=_count(steps, StepStatus.FAILED),
    )
    listed, omitted = select_steps(steps, MAX_STEP_DETAILS)
    error = run_error(run.error)
    output, truncated, preview = cap_output(run.output)
    status = WorkflowRunStatus(
        run_id=run.id,
        phase=phase,
        steps=f"{counts.completed}/{counts.started}",
        step_counts=counts,
        step_details=[summarize_step(step) for step in listed],
        steps_omitted=omitted or None,
        attempt=run.attempt,
        claims=run.claims,
        started_at=_seconds(run.started_at),
        finished_at=_seconds(run.finished_at) if phase.finished else None,
        deadline_at=_seconds(run.deadline_at),
        start_at=_seconds(scheduled),
        duration=(
            format_duration(run.finished_at - run.started_at)
            if phase.finished and run.started_at and run.finished_at
            else None
        ),
        output=output if phase is Phase.SUCCEEDED else None,
        output_truncated=truncated or None,
        output_preview=preview,
        error=error if phase is not Phase.SUCCEEDED else None,
        message=_cap(
            message(
                run,
                steps,
                phase,
                error,
                waiting_reason,
                truncated,
                document=_decode_error(run.error) if run.error else {},
                scheduled=scheduled,
            ),
            MAX_MESSAGE_CHARS,
        ),
        conditions=conditions(
            phase,
            error,
            waiting_reason,
            claimed=run.claims > 0,
            diverged=_divergence(run.warning),
            previous=(previous or {}).get("conditions") or [],
            generation=generation,
            now=now,
        ),
        observed_generation=generation,
        log_tail=log_tail(logs) or None,
    )
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def log_tail(logs: Sequence[LogEntry]) -> list[str]:
    """What ``kubectl describe`` shows of the run's log: one line per record, the last ones."""
    lines = [runlog.render(entry).splitlines()[0] for entry in logs[-LOG_TAIL_LINES:]]
    return [_cap(line, MAX_LOG_LINE_CHARS) for line in lines]


def _divergence(stored: str | None) -> str | None:
    """The message of a ``ReplayDiverged`` warning stored on the run, if there is one."""
    if stored is None:
        return None
    doc = _decode_error(stored)
    return str(doc.get("message", "")) if doc.get("type") == "ReplayDiverged" else None


def _count(steps: Sequence[StepRecord], status: StepStatus) -> int:
    return sum(1 for step in steps if step.status is status)


def select_steps(steps: Sequence[StepRecord], cap: int) -> tuple[list[StepRecord], int]:
    """At most ``cap`` steps in start order: unfinished and failed ones first, then the most
    recently started completed ones; and how many were left out."""
    if len(steps) <= cap:
        return list(steps), 0
    open_steps = [i for i, step in enumerate(steps) if step.status is not StepStatus.COMPLETED]
    chosen = set(open_steps[:cap])
    done = [i for i, step in enumerate(steps) if step.status is StepStatus.COMPLETED]
    chosen.update(done[len(done) - (cap - len(chosen)) :] if cap > len(chosen) else [])
    return [steps[i] for i in sorted(chosen)], len(steps) - len(chosen)


def summarize_step(step: StepRecord) -> StepSummary:
    finished = step.status in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELED)
    return StepSummary(
        name=step.key,
        state=_STATES[step.status],
        attempts=step.attempts,
        started_at=_seconds(step.started_at),
        finished_at=_seconds(step.finished_at) if finished else None,
        duration=(
            format_duration(step.finished_at - step.started_at)
            if finished and step.started_at and step.finished_at
            else None
        ),
        wake_at=_seconds(step.wake_at) if step.status is StepStatus.SLEEPING else None,
        error=(
            tracebacks.one_line(_decode_error(step.error), limit=MAX_STEP_ERROR_CHARS)
            if step.error
            else None
        ),
    )


def run_error(stored: str | None) -> RunError | None:
    """The stored error document (type, message, step, traceback) without its traceback."""
    if stored is None:
        return None
    doc = _decode_error(stored)
    step = doc.get("step")
    return RunError(
        type=str(doc.get("type") or "Error"),
        message=_cap(str(doc.get("message") or ""), MAX_ERROR_CHARS),
        step=str(step) if step is not None else None,
    )


def _decode_error(stored: str) -> dict[str, Any]:
    try:
        doc = json.loads(stored)
    except ValueError:
        return {"message": stored}
    return doc if isinstance(doc, dict) else {"message": str(doc)}


def cap_output(stored: str | None) -> tuple[Any, bool, str | None]:
    """``(output, truncated, preview)``: the decoded output when its JSON fits in
    ``MAX_OUTPUT_BYTES``, else no output, True and the start of the JSON text."""
    if stored is None:
        return None, False, None
    if len(stored.encode()) <= MAX_OUTPUT_BYTES:
        return json.loads(stored), False, None
    return None, True, stored[:OUTPUT_PREVIEW_CHARS] + "…"


def message(
    run: RunRecord,
    steps: Sequence[StepRecord],
    phase: Phase,
    error: RunError | None,
    waiting_reason: str | None,
    truncated: bool,
    *,
    document: Mapping[str, Any] | None = None,
    scheduled: datetime | None = None,
) -> str:
    """The one line that ``kubectl get wfr -o wide`` shows; a failure ends with where in the
    user's code it happened, taken from the stored error ``document``; a run that waits for
    its start time (``scheduled``) says when it starts."""
    if phase is Phase.PENDING:
        if scheduled is not None:
            return f"scheduled to start at {scheduled:%Y-%m-%dT%H:%M:%SZ}"
        if waiting_reason:
            return waiting_reason
        if run.attempt > 1 and error is not None:
            return f"attempt {run.attempt} waits for a worker; the last one failed: {error.type}"
        return "waiting for a worker to take the run"
    if phase is Phase.RUNNING:
        running = [step.key for step in steps if step.status is StepStatus.RUNNING]
        if not running:
            return "running"
        more = len(running) - MAX_NAMED_STEPS
        named = ", ".join(running[:MAX_NAMED_STEPS]) + (f" (+{more} more)" if more > 0 else "")
        return f"running {named}"
    if phase is Phase.SLEEPING:
        return f"sleeping until {_seconds(run.available_at):%Y-%m-%dT%H:%M:%SZ}"
    if phase is Phase.SUCCEEDED:
        if truncated:
            return f"succeeded; output too large to show: stepwise runs show {run.id}"
        return "succeeded"
    if phase is Phase.CANCELED:
        return "canceled"
    if error is None:
        return "failed"
    where = f"step {error.step!r} failed: " if error.step else ""
    line = f"{where}{error.type}: {error.message}".splitlines()[0]
    return tracebacks.with_location(line, document or {}, MAX_MESSAGE_CHARS)


def conditions(
    phase: Phase,
    error: RunError | None,
    waiting_reason: str | None,
    *,
    claimed: bool,
    previous: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: datetime,
    diverged: str | None = None,
) -> list[Condition]:
    """``Finished``, ``Succeeded``, ``WorkerAvailable`` and, once a replay diverged from the
    stored history (``diverged`` says how), ``Diverged``; a condition whose status did not
    change keeps its ``lastTransitionTime``. ``WorkerAvailable`` is about pending runs; once
    a worker took the run (``claimed``) it is True, and a run that ended without ever being
    taken (canceled, expired) keeps what it last said."""
    before = {str(c.get("type")): c for c in previous}
    lowered = phase.value.lower()
    wanted: list[tuple[str, ConditionStatus, str, str]] = [
        (
            FINISHED,
            "True" if phase.finished else "False",
            phase.value,
            f"the run {lowered}" if phase.finished else f"the run is {lowered}",
        )
    ]
    if phase is Phase.SUCCEEDED:
        wanted.append((SUCCEEDED, "True", phase.value, "the run succeeded"))
    elif phase.finished:
        detail = f"{error.type}: {error.message}" if error else f"the run {lowered}"
        wanted.append((SUCCEEDED, "False", phase.value, _cap(detail, MAX_MESSAGE_CHARS)))
    else:
        wanted.append((SUCCEEDED, "Unknown", phase.value, f"the run is {lowered}"))
    if phase is Phase.PENDING and waiting_reason and waiting_reason.startswith(SLOT_WAIT):
        wanted.append((WORKER_AVAILABLE, "True", "ConcurrencyLimit", waiting_reason))
    elif phase is Phase.PENDING and waiting_reason:
        wanted.append((WORKER_AVAILABLE, "False", NO_WORKER, waiting_reason))
    elif phase is Phase.PENDING:
        wanted.append((WORKER_AVAILABLE, "True", "WorkerServing", "a live worker serves it"))
    elif claimed:
        wanted.append((WORKER_AVAILABLE, "True", "Claimed", "a worker took the run"))
    if diverged is not None:
        wanted.append((DIVERGED, "True", "ReplayDiverged", _cap(diverged, MAX_MESSAGE_CHARS)))
    result = [
        _condition(kind, status, reason, text, before.get(kind), generation, now)
        for kind, status, reason, text in wanted
    ]
    kept = before.get(WORKER_AVAILABLE)
    if kept is not None and all(c.type != WORKER_AVAILABLE for c in result):
        result.append(Condition.model_validate(kept))
    return result


def _condition(
    kind: str,
    status: ConditionStatus,
    reason: str,
    text: str,
    before: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime,
) -> Condition:
    since = _seconds(now)
    if before is not None and before.get("status") == status:
        since = datetime.fromisoformat(str(before["lastTransitionTime"]))
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=text,
        last_transition_time=since,
        observed_generation=generation,
    )


def format_duration(delta: timedelta) -> str:
    """``350ms``, ``4.2s``, ``42s``, ``3m7s``, ``5h2m``, ``2d3h``: short, like kubectl's ages."""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def _seconds(value: datetime | None) -> datetime | None:
    """Whole seconds, as Kubernetes' own timestamps."""
    return None if value is None else value.replace(microsecond=0)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
