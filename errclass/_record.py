"""The one place outcomes are recorded: classify once, hand to every sink, contain failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any, Protocol, runtime_checkable

from . import _otel, _signals
from ._outcome import OK, R_DEADLINE, R_GONE, R_OK, Event, Outcome, Role
from ._policy import DEFAULT_POLICY, Policy

log = logging.getLogger("errclass")


class Recorder(Protocol):
    """A sink bound to one producer. ``duration`` is set when ``wants_time``;
    ``ctx`` is the OpenTelemetry context captured at start when ``wants_context``."""

    wants_time: bool
    wants_context: bool
    records_ok: bool  # False: ok() does nothing, so it is not called
    kind: str

    def ok(self, duration: float | None, ctx: Any) -> None: ...

    def fail(
        self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any
    ) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Anything ``track()``/``stream()`` accept besides a plain callable or a Counter."""

    def bind(self, producer: str, role: Role) -> Recorder: ...


# Lists that errclass.testing.capture_outcomes() appends to while active.
captures: list[list[Event]] = []


class Tracker:
    """Sinks bound to one producer name, role and policy. Thread-safe, stateless per call."""

    __slots__ = (
        "_ok_recorders",
        "_recorders",
        "fast_ok",
        "policy",
        "producer",
        "role",
        "timed",
        "traced",
    )  # fmt: skip

    def __init__(self, producer: str, role: Role, policy: Policy | None, sinks: Iterable[Sink]):
        self.producer = producer
        self.role = role
        self.policy = policy or DEFAULT_POLICY
        self._recorders = tuple(s.bind(producer, role) for s in sinks)
        self._ok_recorders = tuple(r for r in self._recorders if r.records_ok)
        self.timed = any(r.wants_time for r in self._recorders)
        self.traced = any(r.wants_context for r in self._recorders)
        if self.traced:
            _otel.load()
        # The common case, one Prometheus counter and nothing else to do on ok:
        # call its pre-bound child directly.
        only = self._ok_recorders[0] if len(self._ok_recorders) == 1 else None
        self.fast_ok = None if self.timed else getattr(only, "fast_ok", None)

    def start(self) -> tuple[float, Any]:
        """What a producer captures when it starts: start time and OpenTelemetry context."""
        return (perf_counter() if self.timed else 0.0), (_otel.capture() if self.traced else None)

    def ok(self, t0: float, ctx: Any) -> None:
        serving = _signals.active()
        if serving is not None and self.role == "producer" and serving.client_gone():
            # A producer that "completed" after its client left wrote into a void.
            self.client_left(t0, ctx)
            return
        duration = None
        if self.fast_ok is not None and ctx is None:
            try:
                self.fast_ok()
            except Exception as e:
                contain("prometheus", e)
        else:
            duration = perf_counter() - t0 if self.timed else None
            for r in self._ok_recorders:
                try:
                    r.ok(duration, ctx)
                except Exception as e:
                    contain(r.kind, e)
        if captures:
            self._capture(OK, None, duration, t0)

    def fail(self, exc: BaseException, t0: float, ctx: Any) -> Outcome:
        outcome = self.policy.classify(exc, self.role)  # already folded by the policy
        if outcome.reason is R_OK:
            self.ok(t0, ctx)
            return OK
        return self._emit(outcome, exc, t0, ctx)

    def record(self, outcome: Outcome, exc: BaseException, t0: float, ctx: Any) -> Outcome:
        """Record an outcome the caller decided (an integration that knows more than
        *exc* shows, e.g. gRPC's status). ``ok`` goes to ``ok()``; the policy's
        ``fold_deadlines`` still applies. Returns the outcome recorded."""
        if outcome.reason is R_OK:
            self.ok(t0, ctx)
            return OK
        if self.policy.fold_deadlines and outcome.reason is R_DEADLINE:
            outcome = Outcome(R_GONE, outcome.error_type, outcome.rule)
        return self._emit(outcome, exc, t0, ctx)

    def client_left(self, t0: float, ctx: Any, exc: BaseException | None = None) -> Outcome:
        """Record ``client_gone`` because the server reported the client gone
        (whatever the producer did); *exc*, if any, is what the producer saw."""
        return self._emit(_signals.TRANSPORT_GONE, exc or _signals.ClientDisconnected(), t0, ctx)

    def _emit(self, outcome: Outcome, exc: BaseException, t0: float, ctx: Any) -> Outcome:
        duration = perf_counter() - t0 if self.timed else None
        for r in self._recorders:
            try:
                r.fail(outcome, exc, duration, ctx)
            except Exception as e:
                contain(r.kind, e)
        if captures:
            self._capture(outcome, exc, duration, t0)
        return outcome

    def _capture(
        self, outcome: Outcome, exc: BaseException | None, duration: float | None, t0: float
    ) -> None:
        if duration is None and t0:
            duration = perf_counter() - t0
        event = Event(self.producer, self.role, outcome, exc, duration)
        for target in list(captures):
            target.append(event)


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

    def __init__(self, fn: Callable[[Event], object], producer: str, role: Role) -> None:
        self.fn, self.producer, self.role = fn, producer, role

    def ok(self, duration: float | None, ctx: Any) -> None:
        self.fn(Event(self.producer, self.role, OK, None, duration))

    def fail(self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any) -> None:
        self.fn(Event(self.producer, self.role, outcome, exc, duration))


_reported: set[str] = set()
_lock = threading.Lock()


def contain(kind: str, error: Exception) -> None:
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


_SINK_KINDS = frozenset({"prometheus", "otel", "logging", "callable"})
