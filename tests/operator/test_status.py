"""``status.build``: a run and its steps → the WorkflowRun status, capped and stable."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepwise.backends.base import RunRecord, RunStatus, StepRecord, StepStatus
from stepwise.operator import status
from stepwise.operator.models import WorkflowRunStatus

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
NOW = T0 + timedelta(seconds=30)


def make_run(state: RunStatus = RunStatus.RUNNING, **changes: Any) -> RunRecord:
    finished = state.finished
    run = RunRecord(
        id="5b3f0a4e-0000-4000-8000-000000000001",
        workflow="fetch-all-data",
        version=None,
        status=state,
        input="{}",
        output=None,
        error=None,
        idempotency_key=None,
        attempt=1,
        claims=1,
        deadline_at=None,
        available_at=T0,
        created_at=T0,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=4, milliseconds=200) if finished else None,
        updated_at=T0,
    )
    return replace(run, **changes)


def make_step(key: str, state: StepStatus = StepStatus.COMPLETED, **changes: Any) -> StepRecord:
    done = state in (StepStatus.COMPLETED, StepStatus.FAILED)
    step = StepRecord(
        run_id="r",
        key=key,
        status=state,
        output="1" if state is StepStatus.COMPLETED else None,
        error=None,
        attempts=1,
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=350) if done else None,
        wake_at=None,
    )
    return replace(step, **changes)


def build(
    run: RunRecord,
    steps: list[StepRecord],
    *,
    previous: dict[str, Any] | None = None,
    waiting_reason: str | None = None,
    now: datetime = NOW,
) -> dict[str, Any]:
    return status.build(
        run, steps, previous=previous, generation=1, waiting_reason=waiting_reason, now=now
    )


def conditions(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in doc["conditions"]}


def test_running_with_parallel_steps() -> None:
    steps = [
        make_step("fetch-user"),
        make_step("fetch-subscription", StepStatus.RUNNING),
        make_step("fetch-settings", StepStatus.RUNNING),
    ]
    doc = build(make_run(), steps)

    assert doc["phase"] == "Running"
    assert doc["steps"] == "1/3"
    assert doc["stepCounts"] == {
        "started": 3, "completed": 1, "running": 2, "sleeping": 0, "failed": 0,
    }  # fmt: skip
    assert [(s["name"], s["state"]) for s in doc["stepDetails"]] == [
        ("fetch-user", "Completed"),
        ("fetch-subscription", "Running"),
        ("fetch-settings", "Running"),
    ]
    assert doc["stepDetails"][0]["duration"] == "350ms"
    assert "finishedAt" not in doc["stepDetails"][1]
    assert doc["message"] == "running fetch-subscription, fetch-settings"
    assert doc["startedAt"] == "2026-03-01T12:00:00Z"  # whole seconds, like Kubernetes' own
    assert "finishedAt" not in doc
    assert "duration" not in doc
    assert "output" not in doc
    assert doc["observedGeneration"] == 1
    assert doc["runId"] == make_run().id
    found = conditions(doc)
    assert found["Succeeded"]["status"] == "Unknown"
    assert found["Finished"]["status"] == "False"
    assert found["WorkerAvailable"]["status"] == "True"
    WorkflowRunStatus.model_validate(doc)  # what the CRD schema is generated from


def test_succeeded_carries_output_duration_and_conditions() -> None:
    run = make_run(RunStatus.SUCCEEDED, output=json.dumps({"total": 6}))
    doc = build(run, [make_step("a"), make_step("b")])

    assert doc["phase"] == "Succeeded"
    assert doc["steps"] == "2/2"
    assert doc["output"] == {"total": 6}
    assert doc["duration"] == "4.2s"
    assert doc["finishedAt"] == "2026-03-01T12:00:04Z"
    assert doc["message"] == "succeeded"
    found = conditions(doc)
    assert (found["Succeeded"]["status"], found["Succeeded"]["reason"]) == ("True", "Succeeded")
    assert found["Finished"]["status"] == "True"
    assert found["Succeeded"]["lastTransitionTime"] == "2026-03-01T12:00:30Z"


def test_failed_shows_the_error_without_its_traceback() -> None:
    error = {
        "type": "StepFailed",
        "message": "step 'charge': failed after 3 attempt(s): ValueError: card declined",
        "step": "charge",
        "traceback": "Traceback (most recent call last): ..." * 100,
    }
    failed_step = make_step(
        "charge",
        StepStatus.FAILED,
        attempts=3,
        error=json.dumps({"type": "ValueError", "message": "card declined"}),
    )
    doc = build(make_run(RunStatus.FAILED, error=json.dumps(error)), [failed_step])

    assert doc["phase"] == "Failed"
    assert doc["error"] == {"type": "StepFailed", "message": error["message"], "step": "charge"}
    assert doc["message"].startswith("step 'charge' failed: StepFailed: ")
    assert doc["stepDetails"][0]["error"] == "ValueError: card declined"
    assert doc["stepDetails"][0]["attempts"] == 3
    succeeded = conditions(doc)["Succeeded"]
    assert (succeeded["status"], succeeded["reason"]) == ("False", "Failed")
    assert "Traceback" not in json.dumps(doc)


def test_canceled() -> None:
    doc = build(make_run(RunStatus.CANCELED), [make_step("a"), make_step("b", StepStatus.RUNNING)])
    assert (doc["phase"], doc["message"], doc["steps"]) == ("Canceled", "canceled", "1/2")
    assert conditions(doc)["Succeeded"]["status"] == "False"


def test_pending_without_a_worker_says_so_in_a_condition() -> None:
    reason = "no live worker serves workflow 'fetch-all-data'"
    doc = build(make_run(RunStatus.PENDING, started_at=None), [], waiting_reason=reason)

    assert doc["phase"] == "Pending"  # not Failed: a rolling deploy may bring a worker
    assert doc["steps"] == "0/0"
    assert doc["message"] == reason
    available = conditions(doc)["WorkerAvailable"]
    assert (available["status"], available["reason"], available["message"]) == (
        "False", "NoWorker", reason,
    )  # fmt: skip
    served = conditions(build(make_run(RunStatus.PENDING, started_at=None), []))
    assert served["WorkerAvailable"]["status"] == "True"


def test_a_worker_that_came_clears_no_worker_even_if_the_run_already_ended() -> None:
    reason = "no live worker serves workflow 'fetch-all-data'"
    waiting = build(
        make_run(RunStatus.PENDING, started_at=None, claims=0), [], waiting_reason=reason
    )
    done = build(make_run(RunStatus.SUCCEEDED), [], previous=waiting)
    assert conditions(done)["WorkerAvailable"]["status"] == "True"
    assert conditions(done)["WorkerAvailable"]["reason"] == "Claimed"
    # Canceled before any worker came: it never had one, and still says so.
    never = build(make_run(RunStatus.CANCELED, claims=0), [], previous=waiting)
    assert conditions(never)["WorkerAvailable"] == conditions(waiting)["WorkerAvailable"]


def test_sleeping_says_until_when() -> None:
    wake = T0 + timedelta(minutes=5)
    nap = make_step("nap", StepStatus.SLEEPING, wake_at=wake)
    doc = build(make_run(RunStatus.SLEEPING, available_at=wake), [make_step("a"), nap])
    assert doc["phase"] == "Sleeping"
    assert doc["message"] == "sleeping until 2026-03-01T12:05:00Z"
    assert doc["stepDetails"][1]["wakeAt"] == "2026-03-01T12:05:00Z"


def test_a_large_output_is_left_in_the_database() -> None:
    output = json.dumps("x" * 100_000)
    doc = build(make_run(RunStatus.SUCCEEDED, output=output), [])

    assert "output" not in doc
    assert doc["outputTruncated"] is True
    assert doc["outputPreview"] == output[: status.OUTPUT_PREVIEW_CHARS] + "…"
    assert (
        doc["message"] == f"succeeded; output too large to show: stepwise runs show {doc['runId']}"
    )
    assert len(json.dumps(doc)) < 8_000


def test_output_at_the_limit_is_kept() -> None:
    output = json.dumps("y" * (status.MAX_OUTPUT_BYTES - 2))
    assert len(output) == status.MAX_OUTPUT_BYTES
    doc = build(make_run(RunStatus.SUCCEEDED, output=output), [])
    assert doc["output"] == json.loads(output)
    assert "outputTruncated" not in doc


def test_thousands_of_steps_stay_small() -> None:
    steps = [make_step(f"item-{i}") for i in range(5000)]
    steps[10] = make_step("item-10", StepStatus.FAILED, attempts=2, error='{"message":"x"}')
    steps[4998] = make_step("item-4998", StepStatus.RUNNING)
    doc = build(make_run(), steps)

    listed = [s["name"] for s in doc["stepDetails"]]
    assert len(listed) == status.MAX_STEP_DETAILS
    assert doc["stepsOmitted"] == 5000 - status.MAX_STEP_DETAILS
    # The unfinished and failed ones first, then the latest completed ones, in start order.
    assert listed[0] == "item-10"
    assert "item-4998" in listed
    assert listed[-1] == "item-4999"
    assert listed == sorted(listed, key=lambda name: int(name.split("-")[1]))
    assert doc["steps"] == "4998/5000"
    assert len(json.dumps(doc)) < 8_000


def test_select_steps_prefers_open_ones_within_the_cap() -> None:
    steps = [make_step(f"s{i}", StepStatus.RUNNING) for i in range(5)]
    chosen, omitted = status.select_steps(steps, 3)
    assert [s.key for s in chosen] == ["s0", "s1", "s2"]
    assert omitted == 2
    assert status.select_steps(steps, 10) == (steps, 0)


def test_long_error_messages_are_capped() -> None:
    error = json.dumps({"type": "RuntimeError", "message": "e" * 10_000})
    doc = build(make_run(RunStatus.FAILED, error=error), [])
    assert len(doc["error"]["message"]) == status.MAX_ERROR_CHARS
    assert doc["error"]["message"].endswith("…")
    assert len(doc["message"]) <= status.MAX_MESSAGE_CHARS


def test_building_twice_gives_the_same_status() -> None:
    """What lets the mirror skip a patch: nothing depends on the clock unless a condition
    changes."""
    run, steps = make_run(), [make_step("a"), make_step("b", StepStatus.RUNNING)]
    first = build(run, steps, now=NOW)
    again = build(run, steps, previous=first, now=NOW + timedelta(minutes=10))
    assert again == first


def test_a_condition_keeps_its_time_until_its_status_changes() -> None:
    pending = build(make_run(RunStatus.PENDING, started_at=None), [], now=T0)
    running = build(make_run(), [], previous=pending, now=NOW)
    done = build(make_run(RunStatus.SUCCEEDED), [], previous=running, now=NOW + timedelta(5))

    assert conditions(running)["Succeeded"]["lastTransitionTime"] == "2026-03-01T12:00:00Z"
    assert conditions(running)["Succeeded"]["reason"] == "Running"
    assert conditions(done)["Succeeded"]["lastTransitionTime"] == "2026-03-06T12:00:30Z"
    # A finished run keeps the last word on workers.
    assert conditions(done)["WorkerAvailable"] == conditions(running)["WorkerAvailable"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.35, "350ms"),
        (4.25, "4.2s"),
        (42.9, "42s"),
        (187, "3m7s"),
        (5 * 3600 + 120, "5h2m"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (-1, "0ms"),
    ],
)
def test_durations_read_like_kubectl(seconds: float, text: str) -> None:
    assert status.format_duration(timedelta(seconds=seconds)) == text


def test_failed_message_ends_with_the_users_line_even_when_cut() -> None:
    error = {
        "type": "StepFailed",
        "message": "step 'charge': failed after 3 attempt(s): ValueError: " + "declined " * 60,
        "step": "charge",
        "at": "flows.py:12 in charge_card",
        "traceback": "Traceback (most recent call last): ...",
    }
    failed_step = make_step(
        "charge",
        StepStatus.FAILED,
        attempts=3,
        error=json.dumps(
            {"type": "ValueError", "message": "declined " * 60, "at": "flows.py:12 in charge_card"}
        ),
    )
    doc = build(make_run(RunStatus.FAILED, error=json.dumps(error)), [failed_step])

    assert doc["message"].startswith("step 'charge' failed: StepFailed: ")
    assert doc["message"].endswith("… at flows.py:12 in charge_card")
    assert len(doc["message"]) == status.MAX_MESSAGE_CHARS
    assert doc["stepDetails"][0]["error"].endswith("… at flows.py:12 in charge_card")
    assert len(doc["stepDetails"][0]["error"]) == status.MAX_STEP_ERROR_CHARS
