"""A plain callable as a sink: ``fn(event: errclass.Event) -> None``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._outcome import OK, Event, Outcome, Role
from ._protocol import Recorder


class CallableSink:
    """Adapts ``fn(event: errclass.Event) -> None`` to a sink."""

    kind = "callable"

    def __init__(self, fn: Callable[[Event], object]) -> None:
        self.fn = fn

    def bind(self, producer: str, role: Role) -> Recorder:
        return _CallableRecorder(self.fn, producer, role)


class _CallableRecorder:
    wants_time = True
    wants_context = False
    records_ok = True
    kind = "callable"
    fast_ok = None

    def __init__(self, fn: Callable[[Event], object], producer: str, role: Role) -> None:
        self.fn, self.producer, self.role = fn, producer, role

    def ok(self, duration: float | None, ctx: Any) -> None:
        self.fn(Event(self.producer, self.role, OK, None, duration))

    def fail(self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any) -> None:
        self.fn(Event(self.producer, self.role, outcome, exc, duration))
