"""``worker.retention`` reaches the workers as ``STEPWISE_RETENTION``; empty (the default) sets
nothing, so workers keep every run; a value that is not a duration is refused by the schema."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.test_chart import env_of, find, helm, merged_values, render, schema_validator

__all__ = ["helm"]  # the fixture, used by name


def test_retention_is_off_by_default(helm: Any) -> None:
    worker = find(
        render(helm, scenario="default-values.yaml"), "Deployment", "demo-stepwise-worker"
    )
    assert "STEPWISE_RETENTION" not in env_of(worker)


def test_retention_reaches_the_workers(helm: Any) -> None:
    objects = render(helm, "worker.retention=30d", scenario="default-values.yaml")
    worker = find(objects, "Deployment", "demo-stepwise-worker")
    assert env_of(worker)["STEPWISE_RETENTION"] == {"name": "STEPWISE_RETENTION", "value": "30d"}


@pytest.mark.parametrize("retention", ["30 days", "1y", "-1d"])
def test_the_schema_refuses_what_is_not_a_duration(retention: str) -> None:
    values = merged_values("default-values.yaml")
    values["worker"]["retention"] = retention
    messages = [e.message for e in schema_validator().iter_errors(values)]
    assert any("does not match" in message for message in messages), messages
