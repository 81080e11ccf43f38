"""Sink failures: contained, counted in ``errclass_internal_errors_total``, logged once."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("errclass")

_SINK_KINDS = frozenset({"prometheus", "otel", "logging", "callable"})
_reported: set[str] = set()
_lock = threading.Lock()


def contain(kind: str, error: BaseException) -> None:
    """Count a sink failure; log the first one of each sink kind. Never raises."""
    try:
        from ._prometheus import shared_counter

        with _lock:
            first = kind not in _reported
            _reported.add(kind)
        counter = shared_counter(
            "errclass_internal_errors",
            "Failures inside errclass sinks, contained and not raised into user code.",
            ("sink",),
        )
        counter.labels(kind if kind in _SINK_KINDS else "other").inc()
        if first:
            log.error(
                "errclass %s sink failed; the error is contained and further ones "
                "are only counted in errclass_internal_errors_total",
                kind,
                exc_info=error,
            )
    except Exception:
        pass
