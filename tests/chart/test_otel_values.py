"""``otel.endpoint`` and ``otel.extraEnv`` reach the workers and the operator as the standard
``OTEL_*`` variables, which turn their tracing on; by default neither gets any."""

from __future__ import annotations

from typing import Any

from tests.chart.test_chart import env_of, find, helm, merged_values, render, schema_validator

__all__ = ["helm"]  # the fixture, used by name

DEPLOYMENTS = ("demo-stepwise-worker", "demo-stepwise-operator")


def test_no_tracing_by_default(helm: Any) -> None:
    objects = render(helm, scenario="default-values.yaml")
    for name in DEPLOYMENTS:
        env = env_of(find(objects, "Deployment", name))
        assert not [key for key in env if key.startswith("OTEL_")]


def test_the_endpoint_and_extra_variables_reach_workers_and_operator(helm: Any) -> None:
    objects = render(
        helm,
        "otel.endpoint=http://collector.observability:4318",
        "otel.extraEnv[0].name=OTEL_TRACES_SAMPLER",
        "otel.extraEnv[0].value=parentbased_traceidratio",
        scenario="default-values.yaml",
    )
    for name in DEPLOYMENTS:
        env = env_of(find(objects, "Deployment", name))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector.observability:4318"
        assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"


def test_the_schema_refuses_an_endpoint_that_is_not_a_url() -> None:
    values = merged_values("default-values.yaml")
    values["otel"] = {"endpoint": "collector:4318", "extraEnv": []}
    messages = [e.message for e in schema_validator().iter_errors(values)]
    assert any("does not match" in message for message in messages), messages
