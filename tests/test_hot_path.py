"""Issue 18: the failure path is the hot path. Each fast path is run here, and must
record exactly what the general path records.

``Tracker.fail`` is chosen once per tracker: one counter (optionally followed by
a logger) gets a closure that counts with the reason's pre-bound child and asks
the logger's level cache; any other shape, a capture or a trace context goes
the general way.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import subprocess
import sys
import textwrap
import traceback
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

import errclass
from errclass import Reason
from errclass._options import tracker
from errclass._record import Tracker, _level_cache
from errclass._scope import wrap
from errclass.testing import capture_outcomes, counter_value

_ids = itertools.count()
FAILURES: dict[str, tuple[Callable[[], BaseException], Reason]] = {
    "BrokenPipeError": (BrokenPipeError, Reason.CLIENT_GONE),
    "TimeoutError": (TimeoutError, Reason.DEADLINE_EXCEEDED),
    "KeyError": (lambda: KeyError("k"), Reason.WRITE_FAILED),
    "CancelledError": (asyncio.CancelledError, Reason.CLIENT_GONE),
}


def _is_fast(tr: Tracker) -> bool:
    return tr.fail.__qualname__.startswith("_counting_fail.")


def _raising(kind: str, tr: Tracker, exc: BaseException) -> Callable[[], Any]:
    """A producer of *kind* that raises *exc*, wrapped with *tr*; calling it runs it."""
    if kind == "sync":

        def body() -> None:
            raise exc

        return wrap(body, tr)

    async def coro() -> None:
        await asyncio.sleep(0)
        raise exc

    wrapped = wrap(coro, tr)
    return lambda: asyncio.run(wrapped())


def _counts(registry: CollectorRegistry, name: str = "hot") -> dict[str, float]:
    return {r.value: counter_value(f"{name}_total", registry, reason=r.value) for r in Reason}


@pytest.mark.parametrize("kind", ["sync", "coro"])
@pytest.mark.parametrize("logger", [None, "errclass.test.hot"])
def test_each_failure_counts_once_through_its_reasons_pre_bound_child(
    kind: str, logger: str | None
) -> None:
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    tr = tracker(f"hot.{next(_ids)}", counter, logger=logger)
    assert _is_fast(tr)
    expected = dict.fromkeys((r.value for r in Reason), 0.0)
    for name, (make, reason) in FAILURES.items():
        exc = make()
        with pytest.raises(type(exc)) as raised:
            _raising(kind, tr, exc)()
        assert raised.value is exc, name  # the program's own exception object
        assert raised.traceback[-1].name in ("body", "coro")  # its own traceback, to the raise
        expected[reason.value] += 1
        assert _counts(registry) == expected, name
    # The closure returns what the general path would have.
    assert tr.fail(BrokenPipeError(), 0.0, None) is tr.policy.classify(BrokenPipeError())


def test_an_exception_the_policy_calls_ok_counts_ok() -> None:
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    tr = tracker("hot.ok", counter, policy=errclass.Policy(generator_exit="ok"), logger=None)
    assert _is_fast(tr)
    with pytest.raises(GeneratorExit):
        _raising("sync", tr, GeneratorExit())()
    assert _counts(registry) == {r.value: float(r is Reason.OK) for r in Reason}


@pytest.mark.parametrize(
    "shape",
    ["logger first", "two counters", "histogram", "capture running"],
)
def test_other_shapes_take_the_general_path_and_count_the_same(shape: str) -> None:
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    sinks: tuple[object, ...] = (counter,)
    if shape == "logger first":
        sinks = (errclass.LoggingSink("errclass.test.hot"), counter)
    elif shape == "two counters":
        sinks = (counter, Counter("hot2", "x", ("reason",), registry=registry))
    elif shape == "histogram":
        hist = Histogram("hot_seconds", "x", ("reason",), registry=registry)
        sinks = (errclass.PrometheusSink(counter, histogram=hist),)
    tr = tracker(f"hot.{next(_ids)}", *sinks, logger=None)
    assert _is_fast(tr) is (shape == "capture running")
    capturing = capture_outcomes() if shape == "capture running" else nullcontext()
    with capturing as events, pytest.raises(BrokenPipeError):
        _raising("sync", tr, BrokenPipeError())()
    assert _counts(registry) == {r.value: float(r is Reason.CLIENT_GONE) for r in Reason}
    if events is not None:
        assert [e.reason for e in events] == [Reason.CLIENT_GONE]


def _internal_errors(sink: str) -> float:
    return counter_value("errclass_internal_errors_total", REGISTRY, sink=sink)


def test_a_failing_pre_bound_child_is_contained_and_the_logger_still_runs() -> None:
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)

    def broken_inc(amount: float = 1, exemplar: object = None) -> None:
        raise OSError("mmap gone")

    counter.labels("write_failed").inc = broken_inc  # type: ignore[method-assign]
    records: list[logging.LogRecord] = []
    with _logger(logging.WARNING, records) as log:
        tr = tracker(f"hot.{next(_ids)}", counter, logger=log)
        assert _is_fast(tr)
        before = _internal_errors("prometheus")
        exc = KeyError("the program's own")
        with pytest.raises(KeyError) as raised:
            _raising("sync", tr, exc)()
    assert raised.value is exc
    assert _internal_errors("prometheus") == before + 1
    assert [r.errclass_reason for r in records] == ["write_failed"]  # type: ignore[attr-defined]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.NOTSET)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@contextmanager
def _logger(level: int, records: list[logging.LogRecord]) -> Iterator[logging.Logger]:
    """A fresh logger under ``errclass.test.hot`` at *level*, collecting into *records*."""
    log = logging.getLogger(f"errclass.test.hot.l{next(_ids)}")
    log.setLevel(level)
    log.propagate = False
    handler = _Collect(records)
    log.addHandler(handler)
    try:
        yield log
    finally:
        log.removeHandler(handler)
        logging.disable(logging.NOTSET)


def test_runtime_logging_changes_are_honoured_on_the_fast_path() -> None:
    """The fast path reads logging's own level cache: every way a level changes at
    run time must still decide whether a failure is logged."""
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    records: list[logging.LogRecord] = []
    parent = logging.getLogger("errclass.test.hot")
    with _logger(logging.WARNING, records) as log:
        tr = tracker(f"hot.{next(_ids)}", counter, logger=log)
        assert _is_fast(tr)
        gone = _raising("sync", tr, BrokenPipeError())  # client_gone: DEBUG
        fault = _raising("sync", tr, KeyError("k"))  # write_failed: WARNING

        assert _level_cache(log) is log._cache  # type: ignore[attr-defined]

        def logged() -> tuple[int, int]:
            """Records logged by two runs of each (the second reads the cache)."""
            out = []
            for run in (gone, fault):
                before = len(records)
                for _ in range(2):
                    with pytest.raises((BrokenPipeError, KeyError)):
                        run()
                out.append(len(records) - before)
            return out[0], out[1]

        assert logged() == (0, 2)
        log.setLevel(logging.DEBUG)
        assert logged() == (2, 2)
        log.setLevel(logging.ERROR)
        assert logged() == (0, 0)
        log.setLevel(logging.NOTSET)  # now the parent decides
        parent.setLevel(logging.DEBUG)
        try:
            assert logged() == (2, 2)
            parent.setLevel(logging.WARNING)
            assert logged() == (0, 2)
        finally:
            parent.setLevel(logging.NOTSET)
        log.setLevel(logging.DEBUG)
        logging.disable(logging.WARNING)
        assert logged() == (0, 0)
        logging.disable(logging.NOTSET)
        assert logged() == (2, 2)
        log.disabled = True  # what logging.config does to existing loggers
        assert logged() == (0, 0)
        log.disabled = False
        assert logged() == (2, 2)
    assert _counts(registry)["client_gone"] == 18  # counted every time, logged or not


class _Loud(logging.Logger):
    """Decides by itself: everything is enabled while ``loud`` is set (logging's
    own cache, which it also fills, then says otherwise)."""

    loud = False

    def isEnabledFor(self, level: int) -> bool:
        return self.loud or super().isEnabledFor(level)


@pytest.mark.parametrize("how", ["adapter", "subclass"])
def test_a_logger_that_decides_by_itself_is_asked_every_time(how: str) -> None:
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    records: list[logging.LogRecord] = []
    with _logger(logging.WARNING, records) as log:
        target: Any = logging.LoggerAdapter(log)
        if how == "subclass":
            target = _Loud(f"loud{next(_ids)}", logging.WARNING)
            target.addHandler(_Collect(records))
        tr = tracker(f"hot.{next(_ids)}", counter, logger=target)
        assert _is_fast(tr)
        assert _level_cache(target) is None
        gone = _raising("sync", tr, BrokenPipeError())
        for _ in range(2):  # the second run would read a filled cache
            with pytest.raises(BrokenPipeError):
                gone()
        assert records == []
        if how == "subclass":
            target.loud = True
        else:
            log.setLevel(logging.DEBUG)  # the adapter's logger changes its mind
        with pytest.raises(BrokenPipeError):
            gone()
        assert len(records) == 1


def test_a_tracer_provider_set_after_the_first_call_gives_exemplars() -> None:
    """In a fresh interpreter: tracked calls before any tracer provider is set carry
    no exemplar; once one is set (the public API), counts made in a span do."""
    script = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from prometheus_client import CollectorRegistry, Counter
        from prometheus_client.openmetrics.exposition import generate_latest
        import errclass

        registry = CollectorRegistry()
        c = Counter("late", "x", ("reason",), registry=registry)
        ok = errclass.track(c, logger=None)(lambda: None)
        @errclass.track(c, logger=None)
        def fail():
            raise BrokenPipeError
        def both():
            ok()
            try:
                fail()
            except BrokenPipeError:
                pass
        both()
        assert "trace_id" not in generate_latest(registry).decode()
        trace.set_tracer_provider(TracerProvider())
        with trace.get_tracer("t").start_as_current_span("req") as span:
            both()
            tid = format(span.get_span_context().trace_id, "032x")
        text = generate_latest(registry).decode()
        for reason in ("ok", "client_gone"):
            line = next(l for l in text.splitlines() if f'reason="{reason}"' in l
                        and l.startswith("late_total"))
            assert f'trace_id="{tid}"' in line, line
        print("exemplars ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "exemplars ok"


class _Rec:
    """A third-party recorder offering the fast failure paths, possibly wrongly."""

    wants_time = False
    wants_context = False
    records_ok = True
    kind = "callable"
    fast_ok = None

    def __init__(self, fast_fail: object, fail_gate: object = None) -> None:
        self.fast_fail, self.fail_gate = fast_fail, fail_gate
        self.failed: list[Reason] = []

    def ok(self, duration: float | None, ctx: Any) -> None:
        pass

    def fail(self, outcome: Any, exc: BaseException, duration: float | None, ctx: Any) -> None:
        self.failed.append(outcome.reason)


class _Sink:
    def __init__(self, rec: object) -> None:
        self.rec = rec

    def bind(self, producer: str, role: str) -> Any:
        return self.rec


class _Broken(_Rec):
    @property
    def fast_fail(self) -> Any:
        raise RuntimeError("fast_fail")

    @fast_fail.setter
    def fast_fail(self, value: object) -> None:
        pass


@pytest.mark.parametrize(
    "offer", ["missing a reason", "not callable", "not a mapping", "gate not a logger"]
)
def test_a_wrongly_offered_fast_path_is_not_taken(offer: str) -> None:
    ticks: list[Reason] = []
    incs: dict[Reason, Any] = {r: (lambda r=r: ticks.append(r)) for r in Reason}
    fast: object = incs
    if offer == "missing a reason":
        del incs[Reason.DEADLINE_EXCEEDED]
    elif offer == "not callable":
        incs[Reason.WRITE_FAILED] = "inc"
    elif offer == "not a mapping":
        fast = [incs[r] for r in Reason]
    rec = _Rec(fast)
    sinks: list[object] = [_Sink(rec)]
    if offer == "gate not a logger":
        sinks.append(_Sink(_Rec(None, (print, dict.fromkeys(Reason, 10)))))
    tr = tracker(f"hot.{next(_ids)}", *sinks, logger=None)
    assert not _is_fast(tr)
    with pytest.raises(KeyError):
        _raising("sync", tr, KeyError("k"))()
    assert (rec.failed, ticks) == ([Reason.WRITE_FAILED], [])  # fail() itself ran


def test_a_fast_fail_that_raises_when_read_is_contained_and_counted() -> None:
    before = _internal_errors("callable")
    tr = tracker(f"hot.{next(_ids)}", _Sink(_Broken(None)), logger=None)
    exc = KeyError("the program's own")
    with capture_outcomes() as events, pytest.raises(KeyError) as raised:
        _raising("sync", tr, exc)()
    assert raised.value is exc
    assert [e.reason for e in events] == [Reason.WRITE_FAILED]
    assert _internal_errors("callable") == before + 1


def test_a_third_party_fast_fail_is_taken_and_counts_each_reason() -> None:
    ticks: list[Reason] = []
    rec = _Rec({r: (lambda r=r: ticks.append(r)) for r in Reason})
    tr = tracker(f"hot.{next(_ids)}", _Sink(rec), logger=None)
    assert _is_fast(tr)
    for make, _reason in FAILURES.values():
        with pytest.raises(BaseException):  # noqa: B017 - each its own type
            _raising("coro", tr, make())()
    assert ticks == [reason for _make, reason in FAILURES.values()]
    assert rec.failed == []  # fast_fail did all fail() would have done


class _CountingSink:
    """A real PrometheusSink that counts its binds."""

    kind = "prometheus"

    def __init__(self, counter: Counter) -> None:
        self.inner, self.binds = errclass.PrometheusSink(counter), 0

    def bind(self, producer: str, role: str) -> Any:
        self.binds += 1
        return self.inner.bind(producer, role)  # type: ignore[arg-type]


@pytest.mark.parametrize("use", ["with", "async with"])
def test_a_track_context_manager_binds_its_sinks_once_and_records_every_block(
    use: str,
) -> None:
    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    sink = _CountingSink(counter)
    tracked = errclass.track(sink, name=f"hot.cm.{next(_ids)}", logger=None)
    plan: list[BaseException | None] = [None, BrokenPipeError(), None, KeyError("k")]

    def block(error: BaseException | None) -> None:
        if error is not None:
            raise error

    async def run_async(error: BaseException | None) -> None:
        async with tracked:
            block(error)

    def run(error: BaseException | None) -> None:
        if use == "async with":
            asyncio.run(run_async(error))
        else:
            with tracked:
                block(error)

    with capture_outcomes() as events:
        for error in plan:
            if error is None:
                run(error)
            else:
                with pytest.raises(type(error)) as raised:
                    run(error)
                assert raised.value is error  # the block's own exception, not swallowed
    assert sink.binds == 1
    assert [(e.reason, e.exception) for e in events] == [
        (Reason.OK, None),
        (Reason.CLIENT_GONE, plan[1]),
        (Reason.OK, None),
        (Reason.WRITE_FAILED, plan[3]),
    ]
    assert _counts(registry) == {
        "ok": 2,
        "client_gone": 1,
        "deadline_exceeded": 0,
        "write_failed": 1,
    }


# -- the fast path against the general one, on random failures ------------------------


class _Hostile(Exception):
    def __str__(self) -> str:
        raise RuntimeError("hostile __str__")


def _failure(kind: str, code: int) -> BaseException:
    """A fresh exception: a real class (with an errno, a chain, a group) or a hostile one."""
    if kind == "oserror":
        return OSError(code, "x")
    if kind == "timeout":
        return TimeoutError(code, "x") if code else TimeoutError()
    if kind == "chained":
        top = RuntimeError("wrapped")
        top.__context__ = ConnectionResetError(code, "reset")
        return top
    if kind == "group":
        return ExceptionGroup("g", [BrokenPipeError(), KeyError(code)])
    return {
        "pipe": BrokenPipeError,
        "cancelled": asyncio.CancelledError,
        "key": KeyError,
        "hostile": _Hostile,
        "base": KeyboardInterrupt.__base__,  # BaseException itself
    }[kind]()


failures = st.lists(
    st.tuples(
        st.sampled_from(
            (
                "oserror",
                "timeout",
                "chained",
                "group",
                "pipe",
                "cancelled",
                "key",
                "hostile",
                "base",
            )
        ),
        st.sampled_from((0, errno.EPIPE, errno.ECONNRESET, errno.ETIMEDOUT, errno.EBADF)),
        st.sampled_from(("sync", "coro")),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(plan=failures, level=st.sampled_from((logging.DEBUG, logging.WARNING, logging.ERROR)))
def test_the_fast_path_records_what_the_general_path_records(
    plan: list[tuple[str, int, str]], level: int
) -> None:
    registry = CollectorRegistry()
    fast_counter = Counter("fast", "x", ("reason",), registry=registry)
    general_counter = Counter("general", "x", ("reason",), registry=registry)
    seen: list[errclass.Event] = []
    fast_logs: list[logging.LogRecord] = []
    general_logs: list[logging.LogRecord] = []
    with _logger(level, fast_logs) as fast_log, _logger(level, general_logs) as general_log:
        fast = tracker(f"hot.{next(_ids)}", fast_counter, logger=fast_log)
        # A callable sink as well: three recorders, so this one goes the general way.
        general = tracker(f"hot.{next(_ids)}", general_counter, seen.append, logger=general_log)
        assert _is_fast(fast) and not _is_fast(general)
        for kind, code, how in plan:
            for tr in (fast, general):
                exc = _failure(kind, code)
                with pytest.raises(BaseException) as raised:
                    _raising(how, tr, exc)()
                assert raised.value is exc
    assert _counts(registry, "fast") == _counts(registry, "general")
    assert sum(_counts(registry, "fast").values()) == len(plan)
    assert [(r.levelno, r.errclass_reason) for r in fast_logs] == [  # type: ignore[attr-defined]
        (r.levelno, r.errclass_reason)  # type: ignore[attr-defined]
        for r in general_logs
    ]
    assert len(seen) == len(plan)


async def test_the_fast_fail_reads_the_deadline_and_hands_odd_classes_to_classify() -> None:
    """The fast failure path reads classify()'s two tables itself: a CancelledError
    is ``client_gone`` outside a deadline and ``deadline_exceeded`` when its
    deadline cut it (the second table is read only while none is watched), and a
    class whose metaclass cannot hash goes to classify()."""

    class Unhashable(type):
        def __hash__(cls) -> int:
            raise RuntimeError("no hash")

    class Odd(Exception, metaclass=Unhashable):
        pass

    registry = CollectorRegistry()
    counter = Counter("hot", "x", ("reason",), registry=registry)
    tr = tracker(f"hot.{next(_ids)}", counter, logger=None)
    assert _is_fast(tr)

    async def slow() -> None:
        await asyncio.sleep(5)

    async def odd() -> None:
        raise Odd

    wrapped_slow, wrapped_odd = wrap(slow, tr), wrap(odd, tr)
    for _ in range(2):  # the second time, from the tables the first filled
        task = asyncio.ensure_future(wrapped_slow())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            async with errclass.deadline(0.01):
                await wrapped_slow()
        with pytest.raises(Odd):
            await wrapped_odd()
    expected = errclass.classify(Odd()).reason.value
    assert _counts(registry) == {
        **dict.fromkeys((r.value for r in Reason), 0.0),
        "client_gone": 2.0,
        "deadline_exceeded": 2.0,
        expected: 2.0,
    }


# -- the sync generator's relay (errclass/_relay.py) ---------------------------------------


class _Exit(GeneratorExit):
    pass


@pytest.fixture(params=["relay", "loop"])
def gen_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test below runs on both paths: delegation through the Relay, and the
    Python loop every wrapper takes where the Relay's probe fails."""
    from errclass import _relay, _signature

    assert _relay.Relay is _relay._Relay  # the probe passed: this CPython relays
    if request.param == "loop":
        monkeypatch.setitem(_signature._GLOBALS, "Relay", None)
    _signature._factory.cache_clear()
    yield request.param
    _signature._factory.cache_clear()


def _echo(seen: list[object]) -> Callable[[], Any]:
    def echo() -> Any:
        try:
            for i in range(4):
                try:
                    seen.append(("sent", (yield i)))
                except ValueError as e:
                    seen.append(("caught", e))
                except _Exit as e:
                    seen.append(("exit", e))
                    yield "after exit"  # the subclass was not a close(): go on
        finally:
            seen.append("closed")
        return "done"

    return echo


def _drive_echo(g: Any, err: ValueError, exit_: _Exit) -> list[object]:
    got: list[object] = [next(g), g.send("a"), g.throw(err), g.throw(exit_)]
    got.append(g.send("b"))
    try:
        next(g)
    except StopIteration as stop:
        got.append(("returned", stop.value))
    return got


def test_send_throw_and_an_exit_subclass_behave_as_without_errclass(gen_path: str) -> None:
    err, exit_ = ValueError("thrown"), _Exit()
    bare: list[object] = []
    expected = _drive_echo(_echo(bare)(), err, exit_)
    seen: list[object] = []
    with capture_outcomes() as events:
        g = errclass.track(logger=None)(_echo(seen))()
        next_items = _drive_echo(g, err, exit_)
    assert next_items == expected
    assert seen == bare and ("exit", exit_) in seen
    assert [e.reason for e in events] == [Reason.OK]


def test_the_relay_is_delegated_to_until_the_first_exit_subclass(gen_path: str) -> None:
    from errclass._relay import _Relay

    g = errclass.track(logger=None)(_echo([]))()
    next(g)
    g.send("a")
    g.throw(ValueError("thrown"))  # caught by the body: still delegating
    assert isinstance(g.gi_yieldfrom, _Relay) is (gen_path == "relay")
    g.throw(_Exit())
    assert g.gi_yieldfrom is None  # the Python loop from here on
    g.close()


@pytest.mark.parametrize("how", ["close", "gc"])
def test_closing_while_delegating_closes_inner_first_and_records_once(
    gen_path: str, how: str
) -> None:
    seen: list[object] = []
    with capture_outcomes() as events:
        g = errclass.track(logger=None)(_echo(seen))()
        next(g)
        if how == "close":
            g.close()
        else:
            del g
        assert seen == ["closed"]
    assert [e.reason for e in events] == [Reason.CLIENT_GONE]


def test_an_error_from_inner_keeps_its_object_and_its_traceback(gen_path: str) -> None:
    err = KeyError("boom")

    def body() -> Any:
        yield 1
        raise err

    def frames(g: Any) -> list[str]:
        next(g)
        with pytest.raises(KeyError) as info:
            next(g)
        assert info.value is err
        return [f.name for f in traceback.extract_tb(info.value.__traceback__)]

    bare = frames(body())
    err.__traceback__ = None
    with capture_outcomes() as events:
        wrapped = frames(errclass.track(logger=None)(body)())
    # One frame more, the wrapper's, once: the error is not thrown back into a
    # finished inner generator and raised a second time.
    assert len(wrapped) == len(bare) + 1 and wrapped[-1] == "body"
    assert [e.exception for e in events] == [err]


def test_an_exit_subclass_inner_does_not_catch_is_raised_and_recorded(gen_path: str) -> None:
    def body() -> Any:
        yield 1
        yield 2

    exit_ = _Exit()
    with capture_outcomes() as events:
        g = errclass.track(logger=None)(body)()
        next(g)
        with pytest.raises(_Exit) as info:
            g.throw(exit_)
    assert info.value is exit_
    assert [e.exception for e in events] == [exit_]


def test_an_inner_whose_close_raises_has_that_error_raised_and_recorded(gen_path: str) -> None:
    err = RuntimeError("cleanup failed")

    def body() -> Any:
        try:
            yield 1
        finally:
            raise err

    with capture_outcomes() as events:
        g = errclass.track(logger=None)(body)()
        next(g)
        with pytest.raises(RuntimeError) as info:
            g.close()
    assert info.value is err
    assert [e.exception for e in events] == [err]  # what the program saw, once


def test_the_relay_probe_tells_a_relay_that_loses_the_return_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from errclass import _relay

    assert _relay._keeps_the_return_value()

    class Chain(itertools.chain):  # type: ignore[type-arg]
        """C-level too, but it clears the inner StopIteration: the value is lost."""

        def __new__(cls, inner: Any, _stop: object) -> Chain:
            return super().__new__(cls, inner)

    monkeypatch.setattr(_relay, "_Relay", Chain)
    assert not _relay._keeps_the_return_value()


# -- the async generator's loop: `async for` over an async generator, else __anext__ --------


class _Proxy:
    """An async iterator that is not an async generator (the general loop): it
    forwards to one, with the same asend/athrow/aclose."""

    def __init__(self, agen: Any) -> None:
        self._agen = agen

    def __aiter__(self) -> _Proxy:
        return self

    def __anext__(self) -> Any:
        return self._agen.__anext__()

    def asend(self, value: object) -> Any:
        return self._agen.asend(value)

    def athrow(self, exc: BaseException) -> Any:
        return self._agen.athrow(exc)

    def aclose(self) -> Any:
        return self._agen.aclose()


def _aecho(seen: list[object]) -> Callable[[], AsyncGenerator[Any, Any]]:
    async def echo() -> AsyncGenerator[Any, Any]:
        try:
            for i in range(4):
                try:
                    seen.append(("sent", (yield i)))
                except ValueError as e:
                    seen.append(("caught", e))
                    yield "after the throw"
                except _Exit as e:
                    seen.append(("exit", e))
        finally:
            seen.append("closed")

    return echo


def _wrapped_aecho(seen: list[object], proxied: bool) -> Any:
    """The async generator under track(), or under stream() behind a _Proxy: only
    stream() hands the wrapper an async iterator that is not an async generator."""
    if proxied:
        return errclass.stream(_Proxy(_aecho(seen)()), logger=None)
    return errclass.track(logger=None)(_aecho(seen))()


async def _drive_aecho(g: Any, err: ValueError, exit_: _Exit, end: str) -> list[object]:
    got: list[object] = [await g.__anext__(), await g.asend("a"), await g.athrow(err)]
    got += [await g.asend("b"), await g.athrow(exit_)]
    if end == "aclose":
        await g.aclose()
    else:
        try:
            await g.__anext__()
        except StopAsyncIteration:
            got.append("stopped")
    return got


@pytest.mark.parametrize("end", ["exhausted", "aclose"])
@pytest.mark.parametrize("proxied", [False, True], ids=["async-generator", "async-iterator"])
async def test_asend_athrow_aclose_behave_as_without_errclass(proxied: bool, end: str) -> None:
    err, exit_ = ValueError("thrown"), _Exit()
    bare: list[object] = []
    expected = await _drive_aecho(_aecho(bare)(), err, exit_, end)
    seen: list[object] = []
    with capture_outcomes() as events:
        g = _wrapped_aecho(seen, proxied)
        assert await _drive_aecho(g, err, exit_, end) == expected
    assert seen == bare and seen[-1] == "closed"
    assert [e.reason for e in events] == [Reason.OK if end == "exhausted" else Reason.CLIENT_GONE]


@pytest.mark.parametrize("proxied", [False, True], ids=["async-generator", "async-iterator"])
async def test_an_athrow_the_async_generator_does_not_catch_is_raised_and_recorded(
    proxied: bool,
) -> None:
    seen: list[object] = []
    err = KeyError("not caught")
    with capture_outcomes() as events:
        g = _wrapped_aecho(seen, proxied)
        await g.__anext__()
        with pytest.raises(KeyError) as info:
            await g.athrow(err)
    assert info.value is err and seen == ["closed"]
    assert [e.exception for e in events] == [err]


@pytest.mark.parametrize("proxied", [False, True], ids=["async-generator", "async-iterator"])
async def test_an_async_generator_whose_aclose_raises_has_that_error_raised_and_recorded(
    proxied: bool,
) -> None:
    err = RuntimeError("cleanup failed")

    async def body() -> AsyncGenerator[int, None]:
        try:
            yield 1
        finally:
            raise err

    with capture_outcomes() as events:
        tracked = errclass.track(logger=None)(body)
        g: Any = errclass.stream(_Proxy(body()), logger=None) if proxied else tracked()
        await g.__anext__()
        with pytest.raises(RuntimeError) as info:
            await g.aclose()
    assert info.value is err
    assert [e.exception for e in events] == [err]  # what the program saw, once
