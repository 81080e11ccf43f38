"""Trace-context access for the sinks: the OpenTelemetry API is imported when a sink
first wants context, and asked for the current context only once a tracer provider is set."""

from __future__ import annotations

from typing import Any

trace: Any = None  # opentelemetry.trace, once load() ran
get_current: Any = None  # opentelemetry.context.get_current, once load() ran


def load() -> None:
    """Import the OpenTelemetry API (once, when a sink that wants context is bound)."""
    global trace, get_current
    if trace is None:
        from opentelemetry import context
        from opentelemetry import trace as trace_api

        get_current = context.get_current
        trace = trace_api


def capture() -> Any:
    """The current OpenTelemetry context, or None while no tracer provider is set.
    (``track()``'s function wrappers inline this test: see ``_signature._sync_template``.)"""
    if trace is None or trace._TRACER_PROVIDER is None:
        return None
    return get_current()


def recording_span(ctx: Any) -> Any:
    """The recording span in *ctx*, or None."""
    if ctx is None or trace is None:
        return None
    span = trace.get_current_span(ctx)
    return span if span.is_recording() else None


def exemplar(ctx: Any) -> dict[str, str] | None:
    """Trace-id exemplar labels for the span in *ctx*, or None."""
    span = recording_span(ctx)
    if span is None:
        return None
    sc = span.get_span_context()
    return {"trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x")}
