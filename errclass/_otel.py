"""OpenTelemetry helpers, imported only when a sink asks for context."""

from __future__ import annotations

import sys
from typing import Any


def tracing_active() -> bool:
    """True once a real tracer provider was set (no cost otherwise)."""
    trace = sys.modules.get("opentelemetry.trace")
    return trace is not None and getattr(trace, "_TRACER_PROVIDER", None) is not None


def capture() -> Any:
    """The current OpenTelemetry context, or None when tracing is not configured."""
    if not tracing_active():
        return None
    from opentelemetry import context

    return context.get_current()


def recording_span(ctx: Any) -> Any:
    """The recording span in *ctx*, or None."""
    if ctx is None:
        return None
    from opentelemetry import trace

    span = trace.get_current_span(ctx)
    return span if span.is_recording() else None


def exemplar(ctx: Any) -> dict[str, str] | None:
    """Trace-id exemplar labels for the span in *ctx*, or None."""
    span = recording_span(ctx)
    if span is None:
        return None
    sc = span.get_span_context()
    return {"trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x")}
