"""A run's steps as bars on one time axis: pure, so the layout is tested without a browser.

Each bar spans its step's first start to its end (or to now while it runs or sleeps), as a
percentage of the run's span, so steps that ran in parallel (``asyncio.gather``) overlap on
the page exactly as they overlapped in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepwise.backends.base import RunRecord, StepRecord

MIN_WIDTH = 0.4
"""Narrowest bar, in percent of the axis: a step of a few microseconds stays visible."""


@dataclass(frozen=True, slots=True)
class Bar:
    key: str
    status: str
    attempts: int
    left: float
    """Where the bar starts, in percent of the axis."""
    width: float
    """Its length, in percent of the axis."""
    seconds: float
    """How long the step ran (so far)."""
    child_id: str | None = None
    """The child run the step started (``run_workflow``, ``start_workflow``)."""


@dataclass(frozen=True, slots=True)
class Timeline:
    bars: list[Bar]
    seconds: float
    """The length of the axis: the run's first start to its end (or now)."""


def layout(run: RunRecord[Any], steps: Sequence[StepRecord[Any]], now: datetime) -> Timeline:
    """The bars of the steps that started, in the order given (the run's first-started order)."""
    started = [s for s in steps if s.started_at is not None]
    if not started:
        return Timeline([], 0.0)
    ends = {s.key: _end(run, s, now) for s in started}
    origin = min([s.started_at for s in started if s.started_at is not None] + _run_start(run))
    finish = max([*ends.values(), run.finished_at or origin])
    span = max((finish - origin).total_seconds(), 1e-6)
    bars = []
    for step in started:
        assert step.started_at is not None
        begin = (step.started_at - origin).total_seconds()
        seconds = max((ends[step.key] - step.started_at).total_seconds(), 0.0)
        width = max(100.0 * seconds / span, MIN_WIDTH)
        left = min(100.0 * begin / span, 100.0 - width)  # a tiny last step stays on the axis
        bars.append(
            Bar(step.key, step.status.value, step.attempts, left, width, seconds, step.child_id)
        )
    return Timeline(bars, span)


def _run_start(run: RunRecord[Any]) -> list[datetime]:
    return [] if run.started_at is None else [run.started_at]


def _end(run: RunRecord[Any], step: StepRecord[Any], now: datetime) -> datetime:
    """When the step ended; a step still in flight ends now, or when its run ended."""
    assert step.started_at is not None
    if step.finished_at is not None:
        return step.finished_at
    return run.finished_at or now
