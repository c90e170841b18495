"""``stepwise worker`` and ``stepwise operator`` set up the SDK from the standard ``OTEL_*``
variables, and only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` is set;
a variable that names something unusable is one line that says which."""

from __future__ import annotations

import os

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from stepwise.cli import telemetry
from stepwise.core import tracing
from stepwise.errors import ConfigurationError

pytestmark = pytest.mark.usefixtures("untraced")


def test_without_the_switches_nothing_is_set_up() -> None:
    assert not telemetry.configure({"OTEL_SERVICE_NAME": "ignored"}, "stepwise-worker")
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert tracing._tracer() is None


def test_an_endpoint_sets_up_otlp_over_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert telemetry.configure(os.environ, "stepwise-worker")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "stepwise-worker"
    assert tracing._tracer() is not None
    assert not telemetry.configure(os.environ, "again"), "a provider set stays"


def test_the_service_name_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-workers")
    assert telemetry.configure(os.environ, "stepwise-worker")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "billing-workers"


def test_exporter_none_sets_up_nothing() -> None:
    assert not telemetry.configure({"OTEL_TRACES_EXPORTER": "none"}, "stepwise-worker")
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER names 'zipkin', which no"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "pip install opentelemetry-exporter-otlp-proto-grpc",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL='http/json': expected one of http/protobuf, grpc",
        ),
    ],
)
def test_an_unusable_setting_is_one_line_naming_it(environ: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says.replace("(", r"\(")):
        telemetry.configure(environ, "stepwise-worker")
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
