"""``operator.logFormat`` and ``worker.logFormat`` reach their containers as
``STEPWISE_LOG_FORMAT`` (text by default), ``worker.maxLogRecords`` the workers as
``STEPWISE_MAX_LOG_RECORDS``; the schema refuses a format the commands do not know."""

from __future__ import annotations

from typing import Any

from tests.chart.test_chart import env_of, find, helm, merged_values, render, schema_validator

__all__ = ["helm"]  # the fixture, used by name


def test_text_logs_and_the_default_cap_by_default(helm: Any) -> None:
    objects = render(helm, scenario="default-values.yaml")
    for name in ("demo-stepwise-worker", "demo-stepwise-operator"):
        env = env_of(find(objects, "Deployment", name))
        assert env["STEPWISE_LOG_FORMAT"]["value"] == "text"
    worker = env_of(find(objects, "Deployment", "demo-stepwise-worker"))
    assert worker["STEPWISE_MAX_LOG_RECORDS"]["value"] == "1000"


def test_json_logs_reach_worker_and_operator(helm: Any) -> None:
    objects = render(
        helm,
        "worker.logFormat=json",
        "operator.logFormat=json",
        "worker.maxLogRecords=50",
        scenario="default-values.yaml",
    )
    for name in ("demo-stepwise-worker", "demo-stepwise-operator"):
        env = env_of(find(objects, "Deployment", name))
        assert env["STEPWISE_LOG_FORMAT"]["value"] == "json"
    worker = env_of(find(objects, "Deployment", "demo-stepwise-worker"))
    assert worker["STEPWISE_MAX_LOG_RECORDS"]["value"] == "50"


def test_the_schema_refuses_an_unknown_format() -> None:
    values = merged_values("default-values.yaml")
    values["worker"]["logFormat"] = "logfmt"
    messages = [e.message for e in schema_validator().iter_errors(values)]
    assert any("'logfmt' is not one of" in message for message in messages), messages
