"""Sinks: Prometheus (any label scheme), OpenTelemetry, logging; failures contained."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

import errclass
from errclass import Reason
from errclass.testing import counter_value, outcome_count

TERANODE = "teranode_asset_repository_subtree_data_created"
TERANODE_LABELS = {
    Reason.OK: {"result": "success", "source": "on_demand_created"},
    Reason.CLIENT_GONE: {"result": "error", "source": "client_gone"},
    Reason.WRITE_FAILED: {"result": "error", "source": "write_failed"},
    Reason.DEADLINE_EXCEEDED: {"result": "error", "source": "write_failed"},
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def run(fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except BaseException:
        pass


def test_default_counter_has_every_reason_at_zero_from_the_start() -> None:
    @errclass.track(logger=None)
    def produce_default(fail: bool) -> None:
        if fail:
            raise BrokenPipeError

    name = produce_default.__module__ + "." + produce_default.__qualname__
    text = generate_latest().decode()
    for reason in Reason:
        assert f'errclass_outcomes_total{{producer="{name}",reason="{reason.value}"}} 0.0' in text
    produce_default(False)
    run(produce_default, True)
    assert outcome_count(name, "ok") == 1
    assert outcome_count(name, Reason.CLIENT_GONE) == 1
    assert outcome_count(name, "write_failed") == 0


def test_counter_with_only_a_reason_label(registry: CollectorRegistry) -> None:
    c = Counter("plain_outcomes", "x", ("reason",), registry=registry)
    f = errclass.track(c, logger=None)(lambda: None)
    f()
    assert counter_value("plain_outcomes_total", registry, reason="ok") == 1


def test_seed_scheme_result_and_source(registry: CollectorRegistry) -> None:
    c = Counter(TERANODE, "seed's counter", ("result", "source"), registry=registry)
    sink = errclass.PrometheusSink(c, labels=TERANODE_LABELS)

    @errclass.track(sink, logger=None)
    def get_subtree_data(exc: BaseException | None) -> Generator[bytes, None, None]:
        yield b"half"
        if exc:
            raise exc

    list(get_subtree_data(None))
    g = get_subtree_data(None)
    next(g)
    g.close()  # the reader went away
    run(list, get_subtree_data(OSError(28, "No space left on device")))
    value = registry.get_sample_value
    assert value(f"{TERANODE}_total", {"result": "success", "source": "on_demand_created"}) == 1
    assert value(f"{TERANODE}_total", {"result": "error", "source": "client_gone"}) == 1
    assert value(f"{TERANODE}_total", {"result": "error", "source": "write_failed"}) == 1


def test_compat_schema_keeps_legacy_value(registry: CollectorRegistry) -> None:
    c = Counter("legacy_outcomes", "x", ("reason", "error_type"), registry=registry)
    f = errclass.track(errclass.PrometheusSink.compat(c), logger=None)(
        lambda e: (_ for _ in ()).throw(e) if e else None
    )
    f(None)
    run(f, BrokenPipeError())
    run(f, KeyError())
    value = registry.get_sample_value
    assert value("legacy_outcomes_total", {"reason": "ok", "error_type": ""}) == 1
    assert (
        value("legacy_outcomes_total", {"reason": "write_failed", "error_type": "client_gone"}) == 1
    )
    assert (
        value("legacy_outcomes_total", {"reason": "write_failed", "error_type": "write_failed"})
        == 1
    )
    # Old dashboards summing reason="write_failed" still see every failure.
    total = sum(
        value("legacy_outcomes_total", {"reason": "write_failed", "error_type": r.value}) or 0
        for r in Reason
        if r is not Reason.OK
    )
    assert total == 2


def test_bad_schemes_fail_at_construction(registry: CollectorRegistry) -> None:
    c = Counter("scheme_outcomes", "x", ("result", "source"), registry=registry)
    with pytest.raises(ValueError, match="no label values for \\['deadline_exceeded'\\]"):
        errclass.PrometheusSink(
            c, labels={r: v for r, v in TERANODE_LABELS.items() if r != "deadline_exceeded"}
        )
    with pytest.raises(ValueError, match="leave \\['source'\\] unset"):
        errclass.PrometheusSink(c, labels={r: {"result": "x"} for r in Reason})
    with pytest.raises(ValueError, match=r"not an errclass\.Reason"):
        errclass.PrometheusSink(c, labels={"oops": {}})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="unset"):
        errclass.PrometheusSink(c)  # no 'reason' label on this counter
    with pytest.raises(TypeError, match="Counter"):
        errclass.PrometheusSink("errclass_outcomes_total")  # type: ignore[arg-type]


class _Opaque:
    """An object that raises on every attribute lookup (a lazy proxy, a broken mock)."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no attribute {name} here")


@pytest.mark.parametrize(
    "make",
    [
        lambda s: errclass.track(s),
        lambda s: errclass.stream([], s),
        lambda s: errclass.fanout_sync([], timeout=1, sinks=[s]),
    ],
    ids=["track", "stream", "fanout_sync"],
)
def test_uninspectable_sink_is_a_clear_type_error(make: Callable[[object], object]) -> None:
    with pytest.raises(
        TypeError, match=r"errclass sinks are .*_Opaque object raised RuntimeError"
    ) as info:
        make(_Opaque())
    assert isinstance(info.value.__cause__, RuntimeError)  # nothing lost


def test_histogram_observes_durations_with_same_labels(registry: CollectorRegistry) -> None:
    c = Counter("timed_outcomes", "x", ("producer", "reason"), registry=registry)
    h = Histogram("timed_seconds", "x", ("producer", "reason"), registry=registry)
    f = errclass.track(errclass.PrometheusSink(c, histogram=h), logger=None, name="timed")(
        lambda: None
    )
    f()
    assert counter_value("timed_seconds_count", registry, producer="timed", reason="ok") == 1
    with pytest.raises(ValueError, match="histogram= must have the counter's labels"):
        errclass.PrometheusSink(c, histogram=Histogram("h2", "x", ("reason",), registry=registry))


@pytest.fixture
def tracing() -> Generator[InMemorySpanExporter, None, None]:
    from opentelemetry import trace

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The global provider can be set once per process; later tests reuse it.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    else:
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    yield exporter
    exporter.clear()


def test_exemplar_carries_trace_id(
    registry: CollectorRegistry, tracing: InMemorySpanExporter
) -> None:
    from opentelemetry import trace

    c = Counter("traced_outcomes", "x", ("reason",), registry=registry)
    f = errclass.track(c, logger=None)(lambda: None)
    with trace.get_tracer("t").start_as_current_span("req") as span:
        f()
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert f'trace_id="{trace_id}"' in openmetrics_latest(registry).decode()


def test_otel_counter_and_span_status(tracing: InMemorySpanExporter) -> None:
    from opentelemetry import trace

    reader = InMemoryMetricReader()
    sink = errclass.OTelSink(MeterProvider(metric_readers=[reader]))

    @errclass.track(sink, logger=None, name="otel-producer")
    def produce(exc: BaseException | None) -> Generator[int, None, None]:
        yield 1
        if exc:
            raise exc

    tracer = trace.get_tracer("t")
    for exc in (None, BrokenPipeError(), KeyError("k"), TimeoutError()):
        with tracer.start_as_current_span(f"req-{type(exc).__name__}"):
            run(list, produce(exc))
    points = {
        tuple(sorted(p.attributes.items())): p.value
        for m in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
        for p in m.data.data_points
    }
    assert points == {
        (("producer", "otel-producer"), ("reason", "ok")): 1,
        (
            ("error.type", "BrokenPipeError"),
            ("producer", "otel-producer"),
            ("reason", "client_gone"),
        ): 1,
        (("error.type", "KeyError"), ("producer", "otel-producer"), ("reason", "write_failed")): 1,
        (
            ("error.type", "TimeoutError"),
            ("producer", "otel-producer"),
            ("reason", "deadline_exceeded"),
        ): 1,
    }
    spans = {s.name: s for s in tracing.get_finished_spans()}
    assert spans["req-NoneType"].status.status_code is StatusCode.UNSET
    assert spans["req-BrokenPipeError"].status.status_code is StatusCode.UNSET  # never an error
    assert spans["req-BrokenPipeError"].attributes["error.type"] == "BrokenPipeError"
    assert spans["req-KeyError"].status.status_code is StatusCode.ERROR
    assert spans["req-TimeoutError"].status.status_code is StatusCode.ERROR


def test_logging_levels_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    f = errclass.track(lambda e: None, logger="errclass.test", name="logged")(
        lambda e: (_ for _ in ()).throw(e)
    )
    with caplog.at_level(logging.DEBUG, logger="errclass.test"):
        run(f, BrokenPipeError())
        run(f, KeyError("k"))
    gone, fault = caplog.records
    assert (gone.levelno, gone.exc_info) == (logging.DEBUG, None)
    assert fault.levelno == logging.WARNING
    assert fault.exc_info is not None and isinstance(fault.exc_info[1], KeyError)
    assert fault.errclass_reason == "write_failed"  # type: ignore[attr-defined]
    assert fault.errclass_producer == "logged"  # type: ignore[attr-defined]
    assert fault.errclass_error_type == "KeyError"  # type: ignore[attr-defined]


def test_nothing_formatted_when_level_disabled() -> None:
    class Loud(BaseException):
        def __str__(self) -> str:
            raise AssertionError("formatted")

    logger = logging.getLogger("errclass.quiet")
    logger.setLevel(logging.ERROR)
    calls: list[object] = []
    logger.addHandler(handler := logging.Handler())
    handler.emit = calls.append  # type: ignore[method-assign]
    f = errclass.track(lambda e: None, logger=logger)(lambda: (_ for _ in ()).throw(Loud()))
    run(f)
    assert calls == []
    logger.removeHandler(handler)


def test_failing_sink_is_contained_counted_and_logged_once(
    sink: list[errclass.Event], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from errclass._sinks import _failures

    monkeypatch.setattr(_failures, "_reported", set())

    def broken(event: errclass.Event) -> None:
        raise RuntimeError("sink down")

    before = counter_value("errclass_internal_errors_total", None, sink="callable")

    @errclass.track(broken, sink.append, logger=None)
    def f() -> int:
        return 7

    with caplog.at_level(logging.ERROR, logger="errclass"):
        assert f() == 7
        assert f() == 7
    assert [e.outcome.reason for e in sink] == ["ok", "ok"]  # other sinks still got it
    assert counter_value("errclass_internal_errors_total", None, sink="callable") == before + 2
    assert len([r for r in caplog.records if "callable sink failed" in r.getMessage()]) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_failing_counter_on_the_fast_path_is_contained(
    registry: CollectorRegistry, kind: str
) -> None:
    c = Counter("fast_outcomes", "x", ("reason",), registry=registry)

    def broken_inc(amount: float = 1, exemplar: object = None) -> None:
        raise OSError("mmap gone")

    c.labels("ok").inc = broken_inc  # type: ignore[method-assign]
    before = counter_value("errclass_internal_errors_total", None, sink="prometheus")
    if kind == "sync":
        f = errclass.track(c, logger=None)(lambda: 7)
        assert f() == 7
    else:

        async def coro() -> int:
            return 7

        g = errclass.track(c, logger=None)(coro)
        assert asyncio.run(g()) == 7
    assert counter_value("errclass_internal_errors_total", None, sink="prometheus") == before + 1
