"""Helpers for your own tests: capture outcomes, read a counter by reason."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _record
from ._outcome import Event, Reason

__all__ = ["capture_outcomes", "counter_value", "outcome_count"]


@contextmanager
def capture_outcomes() -> Iterator[list[Event]]:
    """Collect every ``Event`` recorded by any errclass producer while the block runs::

    with errclass.testing.capture_outcomes() as events:
        list(my_stream())
    assert [e.reason for e in events] == ["ok"]

    It collects from every thread and task in the process, not only the
    block's own: a server under test usually records in its own threads (WSGI,
    gRPC) or tasks (ASGI), and those outcomes are the ones to check. Tests that
    run producers concurrently in one process see each other's events; filter
    on ``event.producer``.
    """
    events: list[Event] = []
    _record.captures.append(events)
    try:
        yield events
    finally:
        _record.captures.remove(events)


def counter_value(metric: str, registry: Any = None, /, **labels: str) -> float:
    """The current value of sample *metric* (e.g. ``"errclass_outcomes_total"``)
    with exactly *labels*, 0.0 when it does not exist."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    value = registry.get_sample_value(metric, labels)
    return 0.0 if value is None else float(value)


def outcome_count(producer: str, reason: Reason | str, registry: Any = None) -> float:
    """How often *producer* ended with *reason* in the default counter."""
    return counter_value(
        "errclass_outcomes_total", registry, producer=producer, reason=Reason(reason).value
    )
