"""OpenTelemetry sink: an outcomes counter, and error.type/status on the producer's span."""

from __future__ import annotations

import threading
from typing import Any

from .. import _trace
from .._outcome import R_OK, Outcome, Reason, Role


class OTelSink:
    """Counts outcomes in an OpenTelemetry counter (attributes ``producer``,
    ``reason``, and ``error.type`` on failures) and marks the span that was
    current when the producer started: ``error.type`` on failures, status ERROR
    for ``write_failed`` and ``deadline_exceeded``, never for ``client_gone``.
    No context is attached or held across a ``yield``.
    """

    kind = "otel"

    def __init__(
        self,
        meter_provider: Any = None,
        *,
        name: str = "errclass.outcomes",
        spans: bool = True,
    ) -> None:
        self.meter_provider, self.name, self.spans = meter_provider, name, spans
        self._counter: Any = None
        self._lock = threading.Lock()

    def bind(self, producer: str, role: Role) -> _OTelRecorder:
        with self._lock:
            if self._counter is None:
                from opentelemetry import metrics

                provider = self.meter_provider or metrics.get_meter_provider()
                self._counter = provider.get_meter("errclass").create_counter(
                    self.name, unit="{outcome}", description="Streaming producer outcomes."
                )
        return _OTelRecorder(self._counter, producer, self.spans)


class _OTelRecorder:
    __slots__ = ("_attrs", "_counter", "_ok", "_spans")
    wants_time = False
    wants_context = True
    records_ok = True
    kind = "otel"
    fast_ok = None

    def __init__(self, counter: Any, producer: str, spans: bool) -> None:
        self._counter, self._spans = counter, spans
        self._ok = {"producer": producer, "reason": Reason.OK.value}
        self._attrs: dict[tuple[Reason, str | None], dict[str, str]] = {}

    def ok(self, duration: float | None, ctx: Any) -> None:
        self._counter.add(1, self._ok, context=ctx)
        if self._spans and (span := _trace.recording_span(ctx)) is not None:
            span.set_attribute("errclass.reason", Reason.OK.value)

    def fail(self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any) -> None:
        key = (outcome.reason, outcome.error_type)
        attrs = self._attrs.get(key)
        if attrs is None:  # bounded: reasons x bounded error types
            attrs = {"producer": self._ok["producer"], "reason": outcome.reason.value}
            if outcome.reason is not R_OK:
                attrs["error.type"] = outcome.error_type or "_OTHER"
            self._attrs[key] = attrs
        self._counter.add(1, attrs, context=ctx)
        if self._spans and (span := _trace.recording_span(ctx)) is not None:
            _mark(span, outcome)


def _mark(span: Any, outcome: Outcome) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("errclass.reason", outcome.reason.value)
    if outcome.reason is R_OK:
        return
    span.set_attribute("error.type", outcome.error_type or "_OTHER")
    if outcome.is_error:
        span.set_status(Status(StatusCode.ERROR, outcome.reason.value))
