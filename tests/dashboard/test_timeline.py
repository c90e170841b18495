"""The timeline's layout as a pure function: parallel steps overlap, dependent steps follow
one another, a step in flight reaches now, a step of microseconds stays visible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stepwise.backends.base import RunRecord, RunStatus, StepRecord, StepStatus
from stepwise.dashboard import timeline

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(finished: float | None) -> RunRecord[Any]:
    status = RunStatus.RUNNING if finished is None else RunStatus.SUCCEEDED
    return RunRecord(
        id="r", workflow="w", version=None, status=status, input="{}", output=None, error=None,
        idempotency_key=None, attempt=1, claims=1, deadline_at=None, available_at=T0,
        created_at=T0, started_at=T0, finished_at=None if finished is None else at(finished),
        updated_at=T0,
    )  # fmt: skip


def step(key: str, start: float | None, end: float | None) -> StepRecord[Any]:
    status = StepStatus.COMPLETED if end is not None else StepStatus.RUNNING
    return StepRecord(
        run_id="r", key=key, status=status, output=None, error=None, attempts=1,
        started_at=None if start is None else at(start),
        finished_at=None if end is None else at(end), wake_at=None,
    )  # fmt: skip


def test_parallel_steps_overlap_and_dependent_steps_follow() -> None:
    steps = [step("a", 0, 4), step("b", 0.5, 3), step("c", 1, 5), step("d", 5, 10)]
    laid = timeline.layout(run(10), steps, now=at(60))
    bars = {bar.key: bar for bar in laid.bars}
    assert laid.seconds == 10
    assert (bars["a"].left, bars["a"].width) == (0, 40)
    assert (bars["b"].left, bars["b"].width) == (5, 25)
    assert (bars["c"].left, bars["c"].width) == (10, 40)
    assert (bars["d"].left, bars["d"].width) == (50, 50)
    assert [bar.key for bar in laid.bars] == ["a", "b", "c", "d"]


def test_a_step_in_flight_reaches_now_and_an_unstarted_one_has_no_bar() -> None:
    laid = timeline.layout(run(None), [step("a", 0, 1), step("b", 1, None)], now=at(4))
    bars = {bar.key: bar for bar in laid.bars}
    assert laid.seconds == 4
    assert (bars["b"].left, bars["b"].width, bars["b"].seconds) == (25, 75, 3)
    assert timeline.layout(run(None), [step("x", None, None)], now=at(1)).bars == []


def test_a_tiny_step_stays_visible_within_the_axis() -> None:
    laid = timeline.layout(run(100), [step("a", 0, 100), step("tiny", 100, 100)], now=at(200))
    tiny = laid.bars[1]
    assert tiny.width == timeline.MIN_WIDTH
    assert tiny.left + tiny.width == 100
