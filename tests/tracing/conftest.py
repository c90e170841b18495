"""``spans``: this process traces into an in-memory exporter for one test, then stops;
``untraced``: what a test set up of tracing is undone after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@pytest.fixture
def untraced() -> Iterator[None]:
    """Whatever tracer provider the test installs is gone after it: the API lets a process
    set one once, so the globals are put back as the SDK's own test helpers do, and later
    tests trace nothing."""
    try:
        yield
    finally:
        provider = trace._TRACER_PROVIDER
        if isinstance(provider, TracerProvider):
            provider.shutdown()
        trace._TRACER_PROVIDER = None
        trace._TRACER_PROVIDER_SET_ONCE = Once()


@pytest.fixture
def spans(untraced: None) -> InMemorySpanExporter:
    """This process traces into the returned exporter for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
