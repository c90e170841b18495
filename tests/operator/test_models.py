"""The spec model: what the API server's schema says, the operator's own parsing agrees with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from stepwise.operator import models


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1m500ms", timedelta(minutes=1, milliseconds=500)),
        ("0s", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert models.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "1.5h", "-1m", "10 m", "1w"])
def test_bad_durations_are_refused_with_the_schema_message(text: str) -> None:
    with pytest.raises(ValueError, match=models.DURATION_MESSAGE):
        models.parse_duration(text)


def test_spec_reads_the_resource_fields() -> None:
    spec = models.WorkflowRunSpec.model_validate(
        {
            "workflow": "fetch-all-data",
            "input": {"userId": 42},
            "version": "v2",
            "deadline": "1h",
            "ttlSecondsAfterFinished": 30,
        }
    )
    assert spec.workflow == "fetch-all-data"
    assert spec.input == {"userId": 42}
    assert spec.ttl_seconds_after_finished == 30
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert spec.deadline_after(created) == created + timedelta(hours=1)
    assert models.WorkflowRunSpec(workflow="w").deadline_after(created) is None


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"workflow": "bad name!"},
        {"workflow": "w", "deadline": "soon"},
        {"workflow": "w", "ttlSecondsAfterFinished": -1},
        {"workflow": "w", "input": [1, 2]},
        {"workflow": "w", "unknown": 1},
    ],
)
def test_invalid_specs(spec: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        models.WorkflowRunSpec.model_validate(spec)


def test_phases_that_end_a_run() -> None:
    assert {p for p in models.Phase if p.finished} == {
        models.Phase.SUCCEEDED,
        models.Phase.FAILED,
        models.Phase.CANCELED,
    }
