"""``stepwise worker`` and ``stepwise operator`` set up the SDK from the standard ``OTEL_*``
variables, and only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` is set;
a variable that names something unusable is one line that says which."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from harness.workers import Procs
from stepwise.cli import telemetry
from stepwise.core import tracing
from stepwise.errors import ConfigurationError

pytestmark = pytest.mark.usefixtures("untraced")

EXAMPLES = Path(__file__).parents[2] / "examples"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


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


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (JSON objects) among the command's output."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := stdout.find("{", at)) != -1:
        try:
            value, end = decoder.raw_decode(stdout, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(value, dict) and "context" in value:
            found.append(value)
        at = end
    return found


def test_stepwise_run_traces_in_the_callers_traceparent(procs: Procs, tmp_path: Path) -> None:
    """``TRACEPARENT`` (as a CI job passes it) is the parent of the run's whole trace."""
    done = procs.cli(
        "run", str(EXAMPLES / "durable_sleep.py"), "onboarding",
        "--input", '{"user": "ada", "waitSeconds": 0.1}',
        "--database-url", f"sqlite:///{tmp_path / 'runs.db'}",
        env={"OTEL_TRACES_EXPORTER": "console", "TRACEPARENT": TRACEPARENT},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spans = _console_spans(done.stdout)
    names = sorted(span["name"] for span in spans)
    assert names == [
        "run onboarding", "run onboarding", "start onboarding",
        "step tips", "step wait-before-tips", "step welcome",
    ]  # fmt: skip
    assert {span["context"]["trace_id"] for span in spans} == {"0x" + TRACEPARENT.split("-")[1]}
    (start,) = (span for span in spans if span["name"] == "start onboarding")
    assert start["parent_id"] == "0x" + TRACEPARENT.split("-")[2]
    assert all(s["resource"]["attributes"]["service.name"] == "stepwise-run" for s in spans)
