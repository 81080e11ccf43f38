"""Prometheus sink: pre-bound children, any label scheme, optional histogram and exemplars."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import _trace
from .._outcome import Outcome, Reason, Role

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

LabelMap = Mapping[Reason, Mapping[str, str]]


class PrometheusSink:
    """Counts outcomes in a prometheus_client ``Counter``.

    By default the counter needs a ``reason`` label (and gets ``producer`` filled
    in when it has one). For another scheme, ``labels`` maps each reason to the
    label values it sets, e.g. the seed's ``{Reason.OK: {"result": "success",
    "source": "on_demand_created"}, ...}``; ``static`` fills labels that do not
    vary. Every reason's series exists at 0 once a producer is bound.
    ``histogram`` (same labels) observes durations. With ``exemplars``, a count
    carries the trace id of the span that was current when the producer started.
    """

    kind = "prometheus"

    def __init__(
        self,
        counter: Counter,
        *,
        labels: LabelMap | None = None,
        reason_label: str = "reason",
        producer_label: str | None = "producer",
        static: Mapping[str, str] | None = None,
        histogram: Histogram | None = None,
        exemplars: bool = True,
    ) -> None:
        from prometheus_client import Counter, Histogram

        if not isinstance(counter, Counter):
            raise TypeError(f"PrometheusSink needs a prometheus_client Counter, got {counter!r}")
        if histogram is not None and not isinstance(histogram, Histogram):
            raise TypeError(f"histogram= must be a prometheus_client Histogram, got {histogram!r}")
        names = tuple(counter._labelnames)
        self.counter, self.histogram, self.exemplars = counter, histogram, exemplars
        self.static = dict(static or {})
        self.producer_label = producer_label if producer_label in names else None
        self.labels = _label_map(labels, reason_label)
        _check_scheme(counter, names, self.labels, self.producer_label, self.static)
        if histogram is not None and tuple(histogram._labelnames) != names:
            raise ValueError(
                f"histogram= must have the counter's labels {list(names)}, "
                f"has {list(histogram._labelnames)}"
            )
        self._bound: dict[str, _PromRecorder] = {}
        self._lock = threading.Lock()

    @classmethod
    def compat(
        cls,
        counter: Counter,
        *,
        legacy: str = "write_failed",
        reason_label: str = "reason",
        type_label: str = "error_type",
        **kwargs: Any,
    ) -> PrometheusSink:
        """The migration-window scheme: every failure keeps the *legacy* value in
        *reason_label*, and the classification goes in *type_label*, so
        dashboards on the legacy value stay valid."""
        labels = {
            r: {
                reason_label: r.value if r is Reason.OK else legacy,
                type_label: "" if r is Reason.OK else r.value,
            }
            for r in Reason
        }
        return cls(counter, labels=labels, **kwargs)

    def bind(self, producer: str, role: Role) -> _PromRecorder:
        rec = self._bound.get(producer)
        if rec is None:
            with self._lock:
                rec = self._bound.get(producer) or _PromRecorder(self, producer)
                self._bound[producer] = rec
        return rec


class _PromRecorder:
    __slots__ = ("_counts", "_exemplars", "_observe", "_ok", "fast_fail", "fast_ok", "wants_time")
    wants_context = True
    records_ok = True
    kind = "prometheus"

    def __init__(self, sink: PrometheusSink, producer: str) -> None:
        extra = dict(sink.static)
        if sink.producer_label:
            extra[sink.producer_label] = producer
        self._counts = {r: sink.counter.labels(**sink.labels[r], **extra) for r in Reason}
        self._observe = (
            {r: sink.histogram.labels(**sink.labels[r], **extra).observe for r in Reason}
            if sink.histogram is not None
            else None
        )
        self._ok = self._counts[Reason.OK]
        self._exemplars = sink.exemplars
        self.wants_time = sink.histogram is not None
        # What ok() and fail() amount to without a histogram or a span: Tracker
        # calls the reason's pre-bound child directly.
        self.fast_ok = None if self._observe is not None else self._ok.inc
        self.fast_fail = (
            None if self._observe is not None else {r: c.inc for r, c in self._counts.items()}
        )

    def ok(self, duration: float | None, ctx: Any) -> None:
        if ctx is None:  # the hot path: no tracing configured
            self._ok.inc()
        else:
            self._count(self._ok, ctx)
        if self._observe is not None and duration is not None:
            self._observe[Reason.OK](duration)

    def fail(self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any) -> None:
        if ctx is None:
            self._counts[outcome.reason].inc()
        else:
            self._count(self._counts[outcome.reason], ctx)
        if self._observe is not None and duration is not None:
            self._observe[outcome.reason](duration)

    def _count(self, child: Any, ctx: Any) -> None:
        if ctx is not None and self._exemplars:
            ex = _trace.exemplar(ctx)
            if ex is not None:
                child.inc(exemplar=ex)
                return
        child.inc()


def _label_map(labels: LabelMap | None, reason_label: str) -> dict[Reason, dict[str, str]]:
    if labels is None:
        return {r: {reason_label: r.value} for r in Reason}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels= must map each errclass.Reason to label values, got {labels!r}")
    out: dict[Reason, dict[str, str]] = {}
    for key, values in labels.items():
        try:
            reason = Reason(key)
        except ValueError:
            raise ValueError(f"labels= has key {key!r}, which is not an errclass.Reason") from None
        if not isinstance(values, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise TypeError(f"labels[{reason.value!r}] must map label names to strings")
        out[reason] = dict(values)
    missing = [r.value for r in Reason if r not in out]
    if missing:
        raise ValueError(
            f"labels= has no label values for {missing}; map every reason "
            "(e.g. deadline_exceeded to the same values as write_failed)"
        )
    return out


def _check_scheme(
    counter: Counter,
    names: tuple[str, ...],
    labels: dict[Reason, dict[str, str]],
    producer_label: str | None,
    static: dict[str, str],
) -> None:
    for reason, values in labels.items():
        given = set(values) | set(static) | ({producer_label} if producer_label else set())
        if given != set(names):
            missing, extra = set(names) - given, given - set(names)
            raise ValueError(
                f"counter {counter._name!r} has labels {list(names)}; the values for "
                f"{reason.value!r} leave {sorted(missing)} unset and set unknown {sorted(extra)}"
            )


_counters: dict[str, Counter] = {}
_sinks: dict[str, PrometheusSink] = {}
_shared_lock = threading.RLock()


def shared_counter(name: str, documentation: str, labels: tuple[str, ...]) -> Counter:
    """``<name>_total`` in the default registry, created once per process (registering a
    name twice is an error)."""
    with _shared_lock:
        counter = _counters.get(name)
        if counter is None:
            from prometheus_client import Counter

            counter = _counters[name] = Counter(name, documentation, labels)
        return counter


def shared_sink(name: str, documentation: str, producer_label: str = "producer") -> PrometheusSink:
    """A sink over ``<name>_total{<producer_label>, reason}`` in the default
    registry, created once per process."""
    with _shared_lock:
        sink = _sinks.get(name)
        if sink is None:
            counter = shared_counter(name, documentation, (producer_label, "reason"))
            sink = _sinks[name] = PrometheusSink(counter, producer_label=producer_label)
        return sink


def default_sink() -> PrometheusSink:
    """The sink over ``errclass_outcomes_total{producer, reason}`` in the default registry."""
    return shared_sink(
        "errclass_outcomes",
        "Streaming producer outcomes by reason (ok, client_gone, deadline_exceeded, write_failed).",
    )
