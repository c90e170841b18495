"""Sets up OpenTelemetry's SDK for a command, from the standard ``OTEL_*`` variables.

Only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` is set: without them a
process exports nothing and pays nothing (``core.tracing``). The exporters are the SDK's, by
their entry-point names (``OTEL_TRACES_EXPORTER``: ``otlp``, the default, ``console``, …);
``otlp`` is the OTLP/HTTP exporter that the ``otel`` extra installs, or the gRPC one when
``OTEL_EXPORTER_OTLP_PROTOCOL`` says ``grpc`` (then install it too). Everything else (the
endpoint, headers, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, the sampler, the batch
sizes) the SDK reads from the environment itself. Spans still buffered are exported at exit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Coroutine, Mapping
from importlib.metadata import entry_points
from typing import Any

from stepwise.core import tracing
from stepwise.errors import ConfigurationError

log = logging.getLogger(__name__)

SWITCHES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER")
"""The variables that turn tracing on; the others only tune it."""

_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


def configure(environ: Mapping[str, str], service: str) -> bool:
    """Install a tracer provider that exports as ``environ`` says, named ``service`` unless
    ``OTEL_SERVICE_NAME`` names it; False when tracing is off (or a provider is installed
    already: an embedding program's stays)."""
    if not any(environ.get(name) for name in SWITCHES):
        return False
    names = _exporter_names(environ)
    if not names:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigurationError(
            f"{' or '.join(SWITCHES)} is set, but OpenTelemetry's SDK is not installed: "
            "pip install 'stepwise-workflows[otel]'"
        ) from None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans to %s", ", ".join(names))
    return True


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The entry-point names ``OTEL_TRACES_EXPORTER`` lists (``otlp`` by default); none for
    ``none``."""
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    if names == ["none"]:
        return []
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if "otlp" in names and protocol not in _OTLP_BY_PROTOCOL:
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: expected one of "
            f"{', '.join(_OTLP_BY_PROTOCOL)}"
        )
    return [_OTLP_BY_PROTOCOL[protocol] if n == "otlp" else n for n in names if n]


def _exporter(name: str) -> type:
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    for entry in found:
        exporter: type = entry.load()
        return exporter
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides"
        + (" (pip install opentelemetry-exporter-otlp-proto-grpc)" if "grpc" in name else "")
    )


async def serving(service: str, work: Coroutine[Any, Any, int], *, inherit: bool = False) -> int:
    """``work`` (a command's), traced as the environment says (``configure``); with
    ``inherit``, in the trace that ``TRACEPARENT`` names, as CI systems and otel-cli pass one
    to the commands they run (``stepwise start`` and ``run``: the runs they start join it)."""
    try:
        configure(os.environ, service)
    except BaseException:
        work.close()
        raise
    with tracing.remote_parent(os.environ.get("TRACEPARENT") if inherit else None):
        return await work
