"""Spans as plain records, from the SDK's in-memory exporter or from OTLP requests, and the
tree they form, printed for people (the docs and the notes quote it)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode


@dataclass(frozen=True)
class SpanView:
    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None
    """The status description of a span whose status is ERROR (an empty one: "")."""
    service: str = ""

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


def from_sdk(spans: Iterable[ReadableSpan], service: str = "") -> list[SpanView]:
    views = []
    for span in spans:
        context, parent, status = span.get_span_context(), span.parent, span.status
        assert context is not None
        assert span.start_time is not None
        assert span.end_time is not None
        views.append(
            SpanView(
                name=span.name,
                trace_id=context.trace_id,
                span_id=context.span_id,
                parent_id=parent.span_id if parent is not None else None,
                start_ns=span.start_time,
                end_ns=span.end_time,
                attributes=dict(span.attributes or {}),
                events=[(e.name, dict(e.attributes or {})) for e in span.events],
                error=(status.description or "")
                if status.status_code is StatusCode.ERROR
                else None,
                service=service,
            )
        )
    return views


def from_otlp(body: bytes) -> list[SpanView]:
    """The spans of one OTLP/HTTP (protobuf) export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    views = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                views.append(
                    SpanView(
                        name=span.name,
                        trace_id=int.from_bytes(span.trace_id, "big"),
                        span_id=int.from_bytes(span.span_id, "big"),
                        parent_id=int.from_bytes(span.parent_span_id, "big") or None,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_attributes(span.attributes),
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        error=span.status.message if span.status.code == 2 else None,
                        service=str(resource.get("service.name", "")),
                    )
                )
    return views


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        value = getattr(pair.value, kind) if kind else None
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        values[pair.key] = value
    return values


def render(
    spans: Sequence[SpanView], missing: dict[int, tuple[str, int | None]] | None = None
) -> str:
    """The spans as an indented tree, times in ms from the earliest start. ``missing`` names
    parents that were never exported: span id → (what to print, its own parent's id)."""
    placeholders = [
        SpanView(text, spans[0].trace_id, span_id, parent, 0, 0, {"?": True})
        for span_id, (text, parent) in (missing or {}).items()
    ]
    t0 = min(s.start_ns for s in spans)
    known = {s.span_id for s in [*spans, *placeholders]}
    children: dict[int | None, list[SpanView]] = {}
    for span in [*spans, *placeholders]:
        parent = span.parent_id if span.parent_id in known else None
        children.setdefault(parent, []).append(span)
    lines = [f"trace {spans[0].trace_id:032x}"]

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start_ns, s.name)):
            lines.append(
                "  " * depth + (f"? {span.name}" if "?" in span.attributes else _line(span, t0))
            )
            walk(span.span_id, depth + 1)

    walk(None, 1)
    return "\n".join(lines)


def _line(span: SpanView, t0: int) -> str:
    start, end = (span.start_ns - t0) / 1e6, (span.end_ns - t0) / 1e6
    keys = ("stepwise.claim", "stepwise.outcome", "stepwise.step.attempt", "stepwise.step.retrying")
    shown = [f"{k.split('.')[-1]}={span.attributes[k]}" for k in keys if k in span.attributes]
    if span.error is not None:
        shown.append(f"ERROR {span.error!r}")
    events = [
        name + (f"({attrs['stepwise.step']})" if "stepwise.step" in attrs else "")
        for name, attrs in span.events
    ]
    if events:
        shown.append("events: " + ", ".join(events))
    where = f" [{span.service}]" if span.service else ""
    return f"{span.name}{where} {start:.0f}..{end:.0f} ms  " + " ".join(shown)
