"""What a WorkflowSchedule's timer decides (pure): only the latest due tick starts, past the
starting deadline it is missed, Forbid waits for the active run, Replace deletes it, history
is pruned oldest first, and a suspended schedule starts nothing and shows no next tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stepwise.operator.schedule_models import WorkflowScheduleSpec
from stepwise.operator.schedules import OwnedRun, plan, run_name

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def spec(**fields: Any) -> WorkflowScheduleSpec:
    return WorkflowScheduleSpec.model_validate(
        {"schedule": "* * * * *", "workflow": "wf", **fields}
    )


def run(n: int, phase: str | None) -> OwnedRun:
    tick = T0 + n * MINUTE
    return OwnedRun(run_name("s", tick), f"uid-{n}", tick, phase)


def test_only_the_latest_due_tick_starts() -> None:
    now = T0 + 10 * MINUTE + timedelta(seconds=5)
    todo = plan("s", spec(), {"lastScheduleTime": "2026-01-01T12:02:00Z"}, T0, [], now)
    assert todo.create == T0 + 10 * MINUTE
    assert todo.status["lastScheduleTime"] == "2026-01-01T12:10:00Z"
    assert todo.status["nextScheduleTime"] == "2026-01-01T12:11:00Z"
    assert todo.status["active"] == [run_name("s", T0 + 10 * MINUTE)]
    again = plan("s", spec(), todo.status, T0, [], now)
    assert again.create is None, "a tick starts once"


def test_a_tick_past_the_starting_deadline_is_missed() -> None:
    now = T0 + timedelta(seconds=40)
    todo = plan("s", spec(startingDeadlineSeconds=30), {}, T0 - MINUTE, [], now)
    assert (todo.create, todo.missed) == (None, T0)
    assert todo.status["lastMissedTime"] == "2026-01-01T12:00:00Z"
    assert plan("s", spec(startingDeadlineSeconds=30), todo.status, T0, [], now).missed is None


def test_forbid_waits_and_replace_deletes_the_active_run() -> None:
    now = T0 + MINUTE
    active = [run(0, "Running")]
    status = {"lastScheduleTime": "2026-01-01T12:00:00Z"}
    forbid = plan("s", spec(concurrencyPolicy="Forbid"), status, T0, active, now)
    assert (forbid.create, forbid.delete) == (None, [])
    assert forbid.status["activeCount"] == 1
    replace = plan("s", spec(concurrencyPolicy="Replace"), status, T0, active, now)
    assert (replace.create, replace.delete) == (now, active)
    assert replace.status["active"] == [run_name("s", now)]
    allow = plan("s", spec(), status, T0, active, now)
    assert (allow.create, allow.delete, allow.status["activeCount"]) == (now, [], 2)


def test_history_is_pruned_oldest_first() -> None:
    runs = [run(n, "Succeeded") for n in range(5)] + [run(n, "Failed") for n in range(5, 8)]
    now = T0 + 7 * MINUTE
    status = {"lastScheduleTime": "2026-01-01T12:07:00Z"}
    todo = plan("s", spec(successfulRunsHistoryLimit=2), status, T0, runs, now)
    assert todo.delete == runs[:3] + runs[5:7]
    assert todo.status["lastSuccessfulTime"] == "2026-01-01T12:04:00Z"


def test_a_suspended_schedule_starts_nothing() -> None:
    todo = plan("s", spec(suspend=True), {}, T0, [], T0 + 5 * MINUTE)
    assert todo.create is None
    assert todo.status["nextScheduleTime"] is None
