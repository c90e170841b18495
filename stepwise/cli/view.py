"""A run as people read it (``stepwise runs show``), and as programs read it (``--json``).

The readable view answers what an operator asks of a run that went wrong: which step, on which
attempt, after how long, with what error and where in their code (``tracebacks.render``), and
when a sleeping step wakes. Outputs are cut to one line; ``--json`` holds everything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepwise.backends.base import StepStatus
from stepwise.client.client import Run, RunAttempt, Signal, Step
from stepwise.core import steps as step_api
from stepwise.core import tracebacks

OUTPUT_WIDTH = 60
MARKS = {
    StepStatus.COMPLETED: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.RUNNING: "▶",
    StepStatus.SLEEPING: "⏾",
    StepStatus.CANCELED: "■",
}


@dataclass(frozen=True, slots=True)
class Shown:
    """Everything ``runs show`` reads about one run."""

    run: Run
    steps: Sequence[Step]
    attempts: Sequence[RunAttempt]
    waiting: str | None
    logs: Sequence[str] = ()
    """The run's last log lines as printed, and as ``runs show --json`` lists them."""
    signals: Sequence[Signal] = ()
    """Every signal sent to the run, in send order, received or still kept for a wait."""
    children: Sequence[Run] = ()
    """The child runs it started, in start order."""


def document(shown: Shown) -> dict[str, Any]:
    """The full document of ``runs show --json``: nothing cut, errors with their tracebacks."""
    run = shown.run
    return {
        "id": run.id,
        "workflow": run.workflow,
        "version": run.version,
        "status": run.status.value,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "deadline_at": _iso(run.deadline_at),
        "available_at": _iso(run.available_at),
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "warning": run.warning,
        "attempt": run.attempt,
        "claims": run.claims,
        "recoveries": run.recoveries,
        "idempotency_key": run.idempotency_key,
        "forked_from": run.forked_from,
        "scheduled_at": _iso(run.scheduled_at),
        "parent_id": run.parent_id,
        "parent_step": run.parent_step,
        "waiting": shown.waiting,
        "attempts": [
            {
                "attempt": a.attempt,
                "status": a.status.value,
                "error": a.error,
                "finished_at": _iso(a.finished_at),
                "retried_at": _iso(a.retried_at),
            }
            for a in shown.attempts
        ],
        "steps": [
            {
                "name": s.key,
                "status": s.status.value,
                "attempts": s.attempts,
                "started_at": _iso(s.started_at),
                "finished_at": _iso(s.finished_at),
                "seconds": seconds_between(s.started_at, s.finished_at),
                "wake_at": _iso(s.wake_at),
                "output": s.output,
                "error": s.error,
                "child_id": s.child_id,
            }
            for s in shown.steps
        ],
        "logs": list(shown.logs),
        "signals": [
            {
                "seq": s.seq,
                "name": s.name,
                "payload": s.payload,
                "idempotency_key": s.idempotency_key,
                "sent_at": _iso(s.sent_at),
                "delivered_to": s.delivered_to,
                "delivered_at": _iso(s.delivered_at),
            }
            for s in shown.signals
        ],
        "children": [
            listed(child) | {"parent_step": child.parent_step} for child in shown.children
        ],
    }


def listed(run: Run) -> dict[str, object]:
    """A run as ``runs list --json`` lists it, and ``runs show --json`` its children."""
    return {
        "id": run.id,
        "workflow": run.workflow,
        "version": run.version,
        "status": run.status.value,
        "attempt": run.attempt,
        "created_at": run.created_at.isoformat(),
        "available_at": run.available_at.isoformat(),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


def render(shown: Shown, now: datetime) -> str:
    """The readable view: the run, a table of its steps, then every error in full."""
    run = shown.run
    status = run.status.value
    if run.attempt > 1:
        status += f" (attempt {run.attempt})"
    if shown.waiting:
        status += f": {shown.waiting}"
    elif run.status.value in ("pending", "sleeping") and run.available_at > now:
        status += f", due {when(run.available_at, now)}"
    facts = [
        ("run", run.id),
        ("workflow", run.workflow + (f" (version {run.version})" if run.version else "")),
        ("status", status),
        ("created", stamp(run.created_at)),
        ("started", stamp(run.started_at) if run.started_at else None),
        ("finished", _finished(run)),
        ("deadline", stamp(run.deadline_at) if run.deadline_at else None),
        ("claims", _claims(run)),
        ("forked from", run.forked_from),
        ("parent", f"{run.parent_id} (step {run.parent_step})" if run.parent_id else None),
        ("scheduled", stamp(run.scheduled_at) if run.scheduled_at else None),
        ("input", cut(run.input)),
        ("output", cut(run.output) if run.output is not None else None),
        ("warning", _warning(run.warning)),
    ]
    lines = [f"{name:<12}{value}" for name, value in facts if value is not None]
    if shown.steps:
        lines += ["", *_table(shown.steps, now)]
    if shown.signals:
        lines += ["", "SIGNALS", *_signals(shown.signals)]
    if shown.children:
        lines += ["", "CHILD RUNS", *_children(shown.children)]
    lines += _errors(shown)
    if shown.logs:
        lines += ["", "LOGS (the last lines; all of them: stepwise runs logs RUN_ID)", *shown.logs]
    return "\n".join(lines)


def _table(steps: Sequence[Step], now: datetime) -> list[str]:
    rows = [("", "STEP", "STATUS", "ATTEMPTS", "DURATION", "OUTPUT / ERROR")]
    for s in steps:
        rows.append(
            (
                MARKS.get(s.status, " "),
                s.key,
                s.status.value,
                str(s.attempts),
                duration(seconds_between(s.started_at, s.finished_at)),
                _outcome(s, now),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    ]


def _signals(signals: Sequence[Signal]) -> list[str]:
    rows = [("#", "NAME", "SENT", "RECEIVED BY", "PAYLOAD")]
    rows += [
        (
            str(s.seq),
            s.name,
            stamp(s.sent_at),
            f"step {s.delivered_to}" if s.delivered_to is not None else "kept for a wait",
            cut(s.payload),
        )
        for s in signals
    ]
    return columns(rows)


def _children(children: Sequence[Run]) -> list[str]:
    rows = [("ID", "WORKFLOW", "STATUS", "STEP")]
    rows += [(c.id, c.workflow, c.status.value, c.parent_step or "") for c in children]
    return columns(rows)


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """``rows`` as lines of left-aligned columns, two spaces apart (the first row: headings)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _outcome(step: Step, now: datetime) -> str:
    if step.error is not None:
        return tracebacks.one_line(step.error, limit=OUTPUT_WIDTH * 2)
    if step.child_id is not None and step.status is not StepStatus.COMPLETED:
        waits = step.status is StepStatus.SLEEPING and step.wake_at is not None
        return f"{'waits for' if waits else 'started'} child run {step.child_id}"
    if step.child_id is not None:
        return cut(step.output)
    if step.status is StepStatus.SLEEPING and step.wake_at is not None:
        return f"wakes {when(step.wake_at, now)}"
    if step.wake_at is not None:
        return f"slept until {stamp(step.wake_at)}"
    if step.status is StepStatus.COMPLETED:
        return cut(step.output)
    return ""


def _errors(shown: Shown) -> list[str]:
    """Every error in full: earlier attempts of the run, every failed attempt of each step
    (the earlier ones without traceback: the step keeps only its last), then the run's own."""
    blocks = [
        (f"attempt {a.attempt} of the run ({a.status.value})", a.error) for a in shown.attempts
    ]
    for step in shown.steps:
        if step.error:
            earlier = step.error.get(step_api.EARLIER, [])
            blocks += [
                (f"step {step.key!r}, attempt {e.get(step_api.ATTEMPT)}", e) for e in earlier
            ]
            attempt = step.error.get(step_api.ATTEMPT, step.attempts)
            blocks.append((f"step {step.key!r}, attempt {attempt}", step.error))
    blocks.append(("run", shown.run.error))
    lines: list[str] = []
    for title, error in blocks:
        if error:
            text = tracebacks.render(error)
            lines += ["", f"{title} error:", *(f"  {line}" for line in text.splitlines())]
    return lines


def _finished(run: Run) -> str | None:
    if run.finished_at is None:
        return None
    took = seconds_between(run.started_at or run.created_at, run.finished_at)
    return f"{stamp(run.finished_at)} (after {duration(took)})"


def _claims(run: Run) -> str | None:
    if run.claims <= 1 and not run.recoveries:
        return None
    again = f", {run.recoveries} after a worker died" if run.recoveries else ""
    return f"{run.claims}{again}"


def _warning(warning: Any) -> str | None:
    if not isinstance(warning, dict):
        return None if warning is None else str(warning)
    return f"{warning.get('type')}: {warning.get('message')}"


def cut(value: Any, width: int = OUTPUT_WIDTH) -> str:
    """``value`` as JSON on one line, at most ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def when(moment: datetime, now: datetime) -> str:
    """``moment`` and how far from ``now`` it is: ``2026-01-02 10:00:00 UTC (in 4m 10s)``."""
    left = (moment - now).total_seconds()
    relative = f"in {duration(left)}" if left >= 0 else f"{duration(-left)} ago"
    return f"{stamp(moment)} ({relative})"


def duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4m 10s``, ``2h 03m``; empty for no duration."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end``; None unless both are known."""
    return None if start is None or end is None else (end - start).total_seconds()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
