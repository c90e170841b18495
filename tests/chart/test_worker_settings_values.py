"""The worker's and every component's settings the chart carries as values: ``onDivergence``
and ``maxPayloadBytes`` reach the workers, ``database.waitForDatabase`` the operator, the
workers and the dashboard, each as the environment variable of its command-line option, with
the option's own default; the schema refuses what the option would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.core import codec
from tests.chart.test_chart import env_of, find, helm, merged_values, render, schema_validator

__all__ = ["helm"]  # the fixture, used by name

WORKER = "demo-stepwise-worker"
COMPONENTS = ["demo-stepwise-operator", WORKER, "demo-stepwise-dashboard"]


def value_of(objects: list[dict[str, Any]], deployment: str, name: str) -> str:
    var = env_of(find(objects, "Deployment", deployment))[name]
    assert set(var) == {"name", "value"}, var
    value: str = var["value"]
    return value


def test_the_defaults_are_the_options_defaults(helm: Any) -> None:
    objects = render(helm, "dashboard.enabled=true", scenario="default-values.yaml")
    assert value_of(objects, WORKER, "STEPWISE_ON_DIVERGENCE") == "warn"
    assert value_of(objects, WORKER, "STEPWISE_MAX_PAYLOAD_BYTES") == str(
        codec.DEFAULT_MAX_PAYLOAD_BYTES
    )
    for deployment in COMPONENTS:
        assert value_of(objects, deployment, "STEPWISE_WAIT_FOR_DATABASE") == "60"


def test_set_values_reach_the_components(helm: Any) -> None:
    objects = render(
        helm,
        "dashboard.enabled=true",
        "worker.onDivergence=fail",
        "worker.maxPayloadBytes=1048576",
        "database.waitForDatabase=180",
        scenario="default-values.yaml",
    )
    assert value_of(objects, WORKER, "STEPWISE_ON_DIVERGENCE") == "fail"
    assert value_of(objects, WORKER, "STEPWISE_MAX_PAYLOAD_BYTES") == "1048576"
    for deployment in COMPONENTS:
        assert value_of(objects, deployment, "STEPWISE_WAIT_FOR_DATABASE") == "180"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("worker", "onDivergence", "ignore"),
        ("worker", "maxPayloadBytes", 0),
        ("worker", "maxPayloadBytes", codec.MAX_PAYLOAD_BYTES + 1),
        ("worker", "maxPayloadBytes", "4MiB"),
        ("database", "waitForDatabase", -1),
        ("database", "waitForDatabase", "1m"),
    ],
)
def test_the_schema_refuses_what_the_option_refuses(section: str, key: str, value: Any) -> None:
    values = merged_values("default-values.yaml")
    values[section][key] = value
    assert list(schema_validator().iter_errors(values)), f"{section}.{key}={value!r} accepted"
