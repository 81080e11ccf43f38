"""The one place outcomes are recorded: classify once, hand to every sink, contain failures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import Any

from . import _client_state, _trace
from ._deadline import watched
from ._outcome import OK, R_DEADLINE, R_FAILED, R_GONE, R_OK, Event, Outcome, Reason, Role
from ._policy import DEFAULT_POLICY, Policy
from ._rule import PASS_THROUGH
from ._sinks._failures import contain
from ._sinks._protocol import Recorder, Sink

# Lists that errclass.testing.capture_outcomes() appends to while active.
captures: list[list[Event]] = []


class Tracker:
    """Sinks bound to one producer name, role and policy. Thread-safe, stateless per call."""

    __slots__ = (
        "_ok_recorders",
        "_recorders",
        "fail",
        "fast_ok",
        "fast_ok_kind",
        "ok",
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
        # Bound once, every attribute read once: a sink whose bind() or recorder
        # raises is contained and counted here, never raised into the producer.
        self._recorders = tuple(b for s in sinks if (b := _bind(s, producer, role)) is not None)
        self._ok_recorders = tuple(r for r in self._recorders if r.records_ok)
        self.timed = any(r.wants_time for r in self._recorders)
        self.traced = any(r.wants_context for r in self._recorders)
        if self.traced:
            _trace.load()
        # The common case, one Prometheus counter and nothing else to do on ok:
        # call its pre-bound child directly.
        only = self._ok_recorders[0] if len(self._ok_recorders) == 1 else None
        self.fast_ok = None if self.timed else getattr(only, "fast_ok", None)
        #: The sink kind a failing ``fast_ok`` is counted under (its recorder's).
        self.fast_ok_kind = only.kind if only is not None else "other"
        #: ``ok(t0, ctx)``: record that the producer finished. Chosen once, here
        #: (structlog's way): the common case gets a closure that does only what
        #: it needs; anything else goes to the general ``_ok``.
        self.ok: Callable[[float, Any], None] = (
            self._ok
            if self.fast_ok is None
            else _fast_ok(self.fast_ok, self.fast_ok_kind, self._ok)
        )
        #: ``fail(exc, t0, ctx) -> Outcome``: classify and record a failure. For
        #: the common shapes (a counter, optionally then a level-gated logger) a
        #: closure that counts with the reason's pre-bound child (see _fast_fail).
        self.fail: Callable[[BaseException, float, Any], Outcome] = (
            _fast_fail(self, self._recorders) or self._fail
        )

    def start(self) -> tuple[float, Any]:
        """What a producer captures when it starts: start time and OpenTelemetry context."""
        return (perf_counter() if self.timed else 0.0), (_trace.capture() if self.traced else None)

    def _ok(self, t0: float, ctx: Any) -> None:
        serving = _client_state.active()
        if serving is not None and self.role == "producer" and serving.client_gone():
            # A producer that "completed" after its client left wrote into a void.
            self.client_left(t0, ctx)
            return
        duration = None
        if self.fast_ok is not None and ctx is None:
            try:
                self.fast_ok()
            except PASS_THROUGH:
                raise
            except BaseException as e:  # a sink, or the exception it formats, is hostile
                contain(self.fast_ok_kind, e)
        else:
            duration = perf_counter() - t0 if self.timed else None
            for r in self._ok_recorders:
                try:
                    r.ok(duration, ctx)
                except PASS_THROUGH:
                    raise
                except BaseException as e:
                    contain(r.kind, e)
        if captures:
            self._capture(OK, None, duration, t0)

    def _fail(self, exc: BaseException, t0: float, ctx: Any) -> Outcome:
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
        gone = exc or _client_state.ClientDisconnected()
        return self._emit(_client_state.TRANSPORT_GONE, gone, t0, ctx)

    def _emit(self, outcome: Outcome, exc: BaseException, t0: float, ctx: Any) -> Outcome:
        duration = perf_counter() - t0 if self.timed else None
        for r in self._recorders:
            try:
                r.fail(outcome, exc, duration, ctx)
            except PASS_THROUGH:
                raise
            except BaseException as e:  # a sink, or the exception it formats, is hostile
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


class _Bound:
    """What errclass uses of one recorder, read once when it is bound (a property that
    raises, or changes its mind, cannot reach the producer's call)."""

    __slots__ = (
        "fail",
        "fail_gate",
        "fast_fail",
        "fast_ok",
        "kind",
        "ok",
        "records_ok",
        "wants_context",
        "wants_time",
    )  # fmt: skip

    def __init__(self, rec: Recorder, kind: str) -> None:
        self.kind = kind
        self.ok, self.fail = rec.ok, rec.fail
        self.records_ok = bool(rec.records_ok)
        self.wants_time = bool(rec.wants_time)
        self.wants_context = bool(rec.wants_context)
        fast = rec.fast_ok
        self.fast_ok = fast if callable(fast) else None
        # The optional fast failure paths (see Recorder), copied and checked here.
        self.fast_fail = _per_reason(getattr(rec, "fast_fail", None), callable)
        gate = getattr(rec, "fail_gate", None)
        self.fail_gate: tuple[Any, dict[Reason, int]] | None = None
        if type(gate) is tuple and len(gate) == 2 and _is_logger(gate[0]):
            levels = _per_reason(gate[1], lambda v: type(v) is int)
            self.fail_gate = None if levels is None else (gate[0], levels)


_FAILURES = (R_GONE, R_DEADLINE, R_FAILED)


def _per_reason(given: object, valid: Callable[[Any], bool]) -> dict[Reason, Any] | None:
    """*given* as a dict over every failure reason, or None when it is not one
    (a fast path the recorder does not offer, or offers wrongly, is not taken)."""
    if not isinstance(given, Mapping):
        return None
    out = {r: given.get(r) for r in _FAILURES}
    return out if all(valid(v) for v in out.values()) else None


def _is_logger(logger: object) -> bool:
    return isinstance(logger, logging.Logger | logging.LoggerAdapter)


def _level_cache(logger: Any) -> dict[int, bool] | None:
    """The dict a ``logging.Logger`` answers ``isEnabledFor`` from, or None.

    Logging's ``isEnabledFor(level)`` answers ``logger._cache[level]`` (unless
    ``disabled``), computed and stored on a miss, and logging clears every
    managed logger's cache in place whenever a level changes (``setLevel``,
    ``logging.disable``). So a cached ``False`` is what ``isEnabledFor`` would
    say now, without the call. A logger that answers in its own way (an
    adapter, an overridden ``isEnabledFor``) is always asked.
    """
    try:
        if not isinstance(logger, logging.Logger) or "isEnabledFor" in vars(logger):
            return None
        if type(logger).isEnabledFor is not logging.Logger.isEnabledFor:
            return None
        cache = logger._cache  # type: ignore[attr-defined]
    except Exception:
        return None
    return cache if type(cache) is dict else None


def _label(kind: object, default: str = "other") -> str:
    return kind if type(kind) is str else default


def _bind(sink: Sink, producer: str, role: Role) -> _Bound | None:
    """*sink* bound to *producer*; None (the failure contained and counted) when its
    ``bind()`` raises or the recorder's attributes cannot be read: that sink then
    records nothing for this producer (or this ``with`` block)."""
    kind = "other"
    try:
        kind = _label(getattr(sink, "kind", None))
        rec = sink.bind(producer, role)
        kind = _label(getattr(rec, "kind", None), kind)
        return _Bound(rec, kind)
    except PASS_THROUGH:
        raise
    except BaseException as e:
        contain(kind, e)
        return None


def _fast_fail(tr: Tracker, recorders: tuple[_Bound, ...]) -> Any:
    """``Tracker.fail`` when its recorders are one counter with ``fast_fail``,
    optionally followed by one with a ``fail_gate`` (the logger): a failure is
    then one classification, a dict lookup and the child's ``inc()``, and the
    logger is only called when its level is enabled *now*. With a context or a
    capture running, or an ``ok`` outcome: the general way."""
    counter, gated = recorders[0] if recorders else None, recorders[1:]
    if tr.timed or counter is None or counter.fast_fail is None or len(gated) > 1:
        return None
    gate = gated[0].fail_gate if gated else (None, {})
    if gate is None:
        return None
    return _counting_fail(tr, counter.fast_fail, counter.kind, gated, gate)


def _counting_fail(
    tr: Tracker, incs: Mapping[Reason, Any], kind: str, gated: tuple[_Bound, ...], gate: Any
) -> Any:
    """``_fast_fail``'s closure: count with *incs* (reason -> pre-bound ``inc``, its
    recorder's *kind*), then the *gated* logger."""
    general, ok = tr._fail, tr.ok
    classify, role = tr.policy.classify, tr.role
    static, unwatched = tr.policy._lookups(role)
    logger, levels = gate
    log: Any = gated[0].fail if gated else None
    log_kind = gated[0].kind if gated else ""
    cache = _level_cache(logger)

    def fail(exc: BaseException, t0: float, ctx: Any) -> Outcome:
        if ctx is not None or captures:
            return general(exc, t0, ctx)
        # classify()'s first two lookups, written out: one call fewer per failure.
        try:
            cls = type(exc)
            outcome = static.get(cls)
            if outcome is None and not watched():
                outcome = unwatched.get(cls)
        except PASS_THROUGH:
            raise
        except BaseException:  # a class whose metaclass cannot hash: classify() knows
            outcome = None
        if outcome is None:
            outcome = classify(exc, role)
        reason = outcome.reason
        if reason is R_OK:
            ok(t0, ctx)
            return OK
        try:
            incs[reason]()
        except PASS_THROUGH:
            raise
        except BaseException as e:  # a sink, or the exception it formats, is hostile
            contain(kind, e)
        if logger is not None:
            try:
                level = levels[reason]
                on = None if cache is None else cache.get(level)
                # None: no cache, or logging cleared it (a level changed). A hit
                # only lets the call through: fail() asks the logger itself.
                if on or (on is None and logger.isEnabledFor(level)):
                    log(outcome, exc, None, None)
            except PASS_THROUGH:
                raise
            except BaseException as e:
                contain(log_kind, e)
        return outcome

    return fail


def _fast_ok(inc: Callable[[], object], kind: str, general: Callable[[float, Any], None]) -> Any:
    """``Tracker.ok`` for one pre-bound counter child and nothing else to do on ok:
    no span to mark, no capture running, no transport to ask (none is published
    when none is alive). Else ``general``. A failing *inc* is counted under *kind*,
    its recorder's."""
    alive, active = _client_state.alive, _client_state.active

    def ok(t0: float, ctx: Any) -> None:
        if ctx is None and not captures and (not alive or active() is None):
            try:
                inc()
            except PASS_THROUGH:
                raise
            except BaseException as e:  # a sink, or the exception it formats, is hostile
                contain(kind, e)
        else:
            general(t0, ctx)

    return ok
