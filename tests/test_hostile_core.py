"""Issue 13, the core: hostile sinks and the generator protocol must never change the
program. Deterministic reproductions first, then a hypothesis suite comparing every
tracked run with the same run untracked."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, Counter

import errclass
from errclass import Reason
from errclass.testing import capture_outcomes

KINDS = ("sync", "coro", "gen", "agen", "gen-close", "agen-close", "with", "async-with")
SINK_LABELS = {"prometheus", "otel", "logging", "callable", "other"}
_ids = itertools.count()


def internal_errors_by_sink() -> dict[str, float]:
    totals = dict.fromkeys(SINK_LABELS, 0.0)
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name == "errclass_internal_errors_total":
                assert s.labels["sink"] in SINK_LABELS
                totals[s.labels["sink"]] += s.value
    return totals


def internal_errors() -> float:
    return sum(internal_errors_by_sink().values())


# -- hostile sinks ----------------------------------------------------------------------

ATTRS = ("kind", "records_ok", "wants_time", "wants_context", "fast_ok", "ok", "fail")
HOSTILITY = (*ATTRS, "ok()", "fail()", "bind", "bind-later", "not-a-recorder")


class HostileError(RuntimeError):
    pass


def _raiser(name: str) -> Any:
    def get(self: object) -> Any:
        raise HostileError(f"recorder attribute {name}")

    return property(get)


class _Recorder:
    wants_time = False
    wants_context = False
    records_ok = True
    kind = "hostile"
    fast_ok = None

    def ok(self, duration: float | None, ctx: Any) -> None:
        pass

    def fail(self, outcome: Any, exc: BaseException, duration: float | None, ctx: Any) -> None:
        pass


def _recorder_class(how: str) -> type[_Recorder]:
    ns: dict[str, Any] = {}
    if how in ATTRS:
        ns[how] = _raiser(how)
    elif how == "ok()":
        ns["ok"] = lambda self, d, c: (_ for _ in ()).throw(HostileError("ok()"))
    elif how == "fail()":
        ns["fail"] = lambda self, o, e, d, c: (_ for _ in ()).throw(HostileError("fail()"))
    return type(f"Rec_{how}", (_Recorder,), ns)


class HostileSink:
    """A sink that breaks in one way: *how* is one of HOSTILITY."""

    def __init__(self, how: str) -> None:
        self.how, self.binds = how, 0
        self.rec = _recorder_class(how)

    def bind(self, producer: str, role: str) -> Any:
        self.binds += 1
        if self.how == "bind" or (self.how == "bind-later" and self.binds > 1):
            raise HostileError("bind()")
        return object() if self.how == "not-a-recorder" else self.rec()


# -- 1 and 2: deterministic, every kind --------------------------------------------------


class Boom(Exception):
    pass


@dataclass
class Run:
    """What the user's code saw: a value, or the exception object it caught."""

    value: Any = None
    error: BaseException | None = None


def _call(kind: str, tracked: errclass.track, body: Callable[[], str]) -> Any:
    if kind == "sync":
        return tracked(body)()
    if kind == "coro":

        async def coro() -> str:
            return body()

        return asyncio.run(tracked(coro)())
    if kind == "with":
        with tracked:
            return body()

    async def block() -> str:
        async with tracked:
            return body()

    return asyncio.run(block())


def _iterate(kind: str, tracked: errclass.track, body: Callable[[], str]) -> Any:
    if kind in ("gen", "gen-close"):

        def gen() -> Generator[int, None, str]:
            yield 1
            return body()

        g = tracked(gen)()
        first = next(g)
        if kind == "gen-close":
            g.close()
            return first
        return list(g)

    async def agen() -> AsyncGenerator[int, None]:
        yield 1
        body()

    async def consume() -> Any:
        a = tracked(agen)()
        first = await a.__anext__()
        if kind == "agen-close":
            await a.aclose()
            return first
        return [first] + [x async for x in a]

    return asyncio.run(consume())


def _drive(kind: str, sinks: tuple[object, ...], fail: BaseException | None) -> Run:
    """Run a producer of *kind* under ``track(*sinks)``; *fail* is raised by its body."""

    def body() -> str:
        if fail is not None:
            raise fail
        return "value"

    tracked = errclass.track(*sinks, name=f"hostile.{kind}.{next(_ids)}", logger=None)
    out = Run()
    try:
        out.value = (_iterate if "gen" in kind else _call)(kind, tracked, body)
    except BaseException as e:
        out.error = e
    return out


EXPECTED = {
    "sync": "value",
    "coro": "value",
    "gen": [],
    "agen": [1],
    "gen-close": 1,
    "agen-close": 1,
    "with": "value",
    "async-with": "value",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["kind", "records_ok", "wants_time", "fast_ok", "ok", "fail"])
def test_a_recorder_attribute_that_raises_is_contained_and_counted(kind: str, how: str) -> None:
    before = internal_errors()
    fail = Boom("the program's own")
    for error in (None, fail):
        with capture_outcomes() as events:
            got = _drive(kind, (HostileSink(how),), error)
        if error is None or kind.endswith("close"):
            assert got.error is None, got.error
            assert got.value == EXPECTED[kind]
        else:
            assert got.error is error  # the program's own exception object
        assert len(events) == 1
    assert internal_errors() > before


@pytest.mark.parametrize("kind", KINDS)
def test_a_bind_that_raises_never_reaches_the_users_code(kind: str) -> None:
    before = internal_errors()
    with capture_outcomes() as events:
        got = _drive(kind, (HostileSink("bind"), errclass.LoggingSink("x")), None)
    assert got.error is None, got.error
    assert got.value == EXPECTED[kind]
    assert len(events) == 1
    assert internal_errors() > before


@pytest.mark.parametrize("use", ["with", "async with"])
def test_a_bind_that_fails_later_breaks_no_later_block(use: str) -> None:
    # A track object binds its sinks once (its first entry): the later binds
    # are those of later track objects over the same sink.
    sink = HostileSink("bind-later")
    name = f"hostile.later.{next(_ids)}"

    async def twice_async() -> list[int]:
        out = []
        for i in range(3):
            async with errclass.track(sink, name=name, logger=None):
                out.append(i)
        return out

    def twice() -> list[int]:
        out = []
        for i in range(3):
            with errclass.track(sink, name=name, logger=None):
                out.append(i)
        return out

    with capture_outcomes() as events:
        assert (twice() if use == "with" else asyncio.run(twice_async())) == [0, 1, 2]
    assert [e.reason for e in events] == [Reason.OK] * 3
    assert sink.binds == 3


# -- a fast ok that raises is counted under its own recorder's kind ------------------------


class RaisingCounter(Counter):
    """A real prometheus_client Counter whose children's ``inc`` fails: the
    Prometheus sink's fast ok is that very ``inc``."""

    def inc(self, amount: float = 1, exemplar: Any = None) -> None:
        raise HostileError("inc()")


_raising_counter = RaisingCounter(
    "hostile_raising_outcomes", "x", ("reason", "producer"), registry=CollectorRegistry()
)


class FastOkRecorder(_Recorder):
    """A custom recorder whose ``fast_ok`` (the only ok recorder's) raises."""

    def __init__(self, kind: str, wants_context: bool) -> None:
        self.kind, self.wants_context = kind, wants_context

    def fast_ok(self) -> None:
        raise HostileError("fast_ok()")


class FastOkSink:
    def __init__(self, kind: str, wants_context: bool = False) -> None:
        self.kind, self.wants_context = kind, wants_context

    def bind(self, producer: str, role: str) -> FastOkRecorder:
        return FastOkRecorder(self.kind, self.wants_context)


FAST_OK_SINKS: dict[str, tuple[Callable[[], object], str]] = {
    # what the sink is: (a fresh one, the label its failures are counted under)
    "prometheus": (lambda: errclass.PrometheusSink(_raising_counter), "prometheus"),
    **{
        f"{k}{'-traced' if traced else ''}": (
            lambda k=k, traced=traced: FastOkSink(k, traced),
            k if k in SINK_LABELS else "other",
        )
        for k in ("otel", "logging", "callable", "custom")
        for traced in (False, True)
    },
}


@pytest.mark.parametrize("captured", [False, True], ids=["plain", "captured"])
@pytest.mark.parametrize("sink", FAST_OK_SINKS)
@pytest.mark.parametrize("kind", [k for k in KINDS if not k.endswith("close")])
def test_a_fast_ok_that_raises_is_counted_under_its_recorders_kind(
    kind: str, sink: str, captured: bool
) -> None:
    # Each entry point reaches fast_ok its own way (the compiled body, the fast ok
    # closure, Tracker._ok when a capture runs): all count under the same label.
    make, label = FAST_OK_SINKS[sink]
    before = internal_errors_by_sink()
    if captured:
        with capture_outcomes() as events:
            got = _drive(kind, (make(),), None)
        assert [e.reason for e in events] == [Reason.OK]
    else:
        got = _drive(kind, (make(),), None)
    assert got.error is None, got.error
    assert got.value == EXPECTED[kind]
    after = internal_errors_by_sink()
    assert {s: after[s] - before[s] for s in SINK_LABELS} == {
        s: 1.0 if s == label else 0.0 for s in SINK_LABELS
    }


# -- 3: a GeneratorExit subclass thrown in --------------------------------------------------


class Exit(GeneratorExit):
    pass


def test_throw_of_a_generator_exit_subclass_reaches_the_generator_as_that_object() -> None:
    received: list[BaseException] = []

    def body() -> Generator[int, None, str]:
        try:
            yield 1
        except Exit as e:
            received.append(e)
            return "caught"
        return "not reached"

    for g in (body(), errclass.track(logger=None)(body)()):
        next(g)
        thrown = Exit()
        with pytest.raises(StopIteration) as stop:
            g.throw(thrown)
        assert stop.value.value == "caught"
        assert received.pop() is thrown


def test_athrow_of_a_generator_exit_subclass_reaches_the_generator_as_that_object() -> None:
    received: list[BaseException] = []

    async def body() -> AsyncGenerator[int, None]:
        try:
            yield 1
        except Exit as e:
            received.append(e)
        yield 2

    async def main() -> None:
        for g in (body(), errclass.track(logger=None)(body)()):
            await g.__anext__()
            thrown = Exit()
            assert await g.athrow(thrown) == 2
            assert received.pop() is thrown
            await g.aclose()

    asyncio.run(main())


# -- the hypothesis suite --------------------------------------------------------------------


class Own(Exception):
    pass


class OwnBase(BaseException):  # not an Exception: a program's own control flow
    pass


class Thrown(Exception):
    pass


THROWN: dict[str, Callable[[], BaseException]] = {
    "exit-subclass": Exit,
    "value-error": Thrown,
    "base": OwnBase,
}


@dataclass(frozen=True)
class Body:
    yields: int  # generators: how many items before the end
    on_throw: str  # reraise / return / own / continue
    end: str  # return / own / own-base


@dataclass(frozen=True)
class Step:
    op: str  # next / send / throw / close
    what: str = ""  # the exception to throw


bodies = st.builds(
    Body,
    yields=st.integers(0, 3),
    on_throw=st.sampled_from(("reraise", "return", "own", "continue")),
    end=st.sampled_from(("return", "own", "own-base")),
)
steps = st.lists(
    st.one_of(
        st.builds(Step, st.sampled_from(("next", "send", "close"))),
        st.builds(Step, st.just("throw"), st.sampled_from(sorted(THROWN))),
    ),
    max_size=5,
)
sink_sets = st.lists(st.sampled_from(HOSTILITY), max_size=3)


class Trace:
    """What the caller and the body saw, objects named so two runs compare."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.objects: dict[int, str] = {}
        self.alive: list[object] = []  # ids stay unique while the trace lives

    def name(self, obj: object, tag: str) -> None:
        self.objects[id(obj)] = tag
        self.alive.append(obj)

    def tag(self, e: BaseException) -> Any:
        return self.objects.get(id(e), ("other", type(e).__name__))

    def add(self, what: str, value: Any) -> None:
        self.events.append((what, value))


def _end(body: Body, trace: Trace) -> str:
    if body.end == "return":
        return "done"
    e = Own() if body.end == "own" else OwnBase()
    trace.name(e, "own-end")
    raise e


def _on_throw(body: Body, e: BaseException, trace: Trace) -> str | None:
    """What the body does with a thrown exception: None to keep going."""
    trace.add("got", trace.tag(e))
    if body.on_throw == "reraise" or (body.on_throw == "continue" and type(e) is GeneratorExit):
        raise e
    if body.on_throw == "return":
        return "returned"
    if body.on_throw == "own":
        own = Own()
        trace.name(own, "own-thrown")
        raise own from e
    return None


def make_gen(body: Body, trace: Trace) -> Callable[[], Generator[int, Any, str]]:
    def gen() -> Generator[int, Any, str]:
        i = 0
        while i < body.yields:
            try:
                sent = yield i
                trace.add("sent", sent)
            except BaseException as e:
                if (ret := _on_throw(body, e, trace)) is not None:
                    return ret
            i += 1
        return _end(body, trace)

    return gen


def make_agen(body: Body, trace: Trace) -> Callable[[], AsyncGenerator[int, Any]]:
    async def agen() -> AsyncGenerator[int, Any]:
        i = 0
        while i < body.yields:
            try:
                sent = yield i
                trace.add("sent", sent)
            except BaseException as e:
                if _on_throw(body, e, trace) is not None:
                    return
            i += 1
        _end(body, trace)

    return agen


def _step(g: Any, step: Step, trace: Trace, n: int) -> bool:
    """One caller action on a sync generator; False once it is finished."""
    try:
        if step.op == "close":
            g.close()
            trace.add("closed", None)
            return True
        if step.op == "throw":
            e = THROWN[step.what]()
            trace.name(e, f"thrown-{n}")
            trace.add("yield", g.throw(e))
        else:
            trace.add("yield", next(g) if step.op == "next" else g.send(n))
    except StopIteration as stop:
        trace.add("stop", stop.value)
        return False
    except BaseException as e:
        trace.add("raise", trace.tag(e))
        return False
    return True


async def _astep(g: Any, step: Step, trace: Trace, n: int) -> bool:
    try:
        if step.op == "close":
            await g.aclose()
            trace.add("closed", None)
            return True
        if step.op == "throw":
            e = THROWN[step.what]()
            trace.name(e, f"thrown-{n}")
            trace.add("yield", await g.athrow(e))
        else:
            trace.add("yield", await (g.__anext__() if step.op == "next" else g.asend(n)))
    except StopAsyncIteration:
        trace.add("stop", None)
        return False
    except BaseException as e:
        trace.add("raise", trace.tag(e))
        return False
    return True


def run_gen(body: Body, script: list[Step], wrap: Callable[[Any], Any] | None) -> Trace:
    trace = Trace()
    fn = make_gen(body, trace)
    g = (wrap(fn) if wrap else fn)()
    more = _step(g, Step("next"), trace, 0)
    for n, step in enumerate(script, 1):
        if not more or not _step(g, step, trace, n):
            break
    _step(g, Step("close"), trace, -1)
    return trace


def run_agen(body: Body, script: list[Step], wrap: Callable[[Any], Any] | None) -> Trace:
    trace = Trace()
    fn = make_agen(body, trace)

    async def main() -> None:
        g = (wrap(fn) if wrap else fn)()
        more = await _astep(g, Step("next"), trace, 0)
        for n, step in enumerate(script, 1):
            if not more or not await _astep(g, step, trace, n):
                break
        await _astep(g, Step("close"), trace, -1)

    asyncio.run(main())
    return trace


registry = CollectorRegistry()
COUNTER = Counter("hostile_outcomes", "x", ("producer", "reason"), registry=registry)


def _counted(name: str) -> float:
    return sum(
        s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == "hostile_outcomes_total" and s.labels["producer"] == name
    )


def _check_closed_labels() -> None:
    reasons = {r.value for r in Reason}
    for m in registry.collect():
        for s in m.samples:
            if s.name == "hostile_outcomes_total":
                assert s.labels["reason"] in reasons
    internal_errors()  # asserts its sink label set


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(("gen", "agen")),
    body=bodies,
    script=steps,
    hostile=sink_sets,
)
def test_tracked_generators_behave_as_untracked_ones_with_hostile_sinks(
    kind: str, body: Body, script: list[Step], hostile: list[str]
) -> None:
    name = f"hostile.prop.{next(_ids)}"
    seen: list[errclass.Event] = []
    sinks = (*(HostileSink(h) for h in hostile), seen.append, COUNTER)
    wrap = errclass.track(*sinks, name=name, logger=None)
    run = run_gen if kind == "gen" else run_agen
    plain = run(body, script, None)
    with capture_outcomes() as events:
        tracked = run(body, script, wrap)
    assert tracked.events == plain.events  # same values, same exception objects
    mine = [e for e in events if e.producer == name]
    assert len(mine) == 1  # a started run records exactly once
    assert len(seen) == 1  # and reaches the working sinks, whatever the others do
    assert _counted(name) == 1
    _check_closed_labels()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(("sync", "coro", "with", "async-with")),
    end=st.sampled_from(("return", "own", "own-base")),
    hostile=sink_sets,
)
def test_tracked_calls_and_blocks_behave_as_untracked_ones_with_hostile_sinks(
    kind: str, end: str, hostile: list[str]
) -> None:
    fail = None if end == "return" else Own() if end == "own" else OwnBase()
    seen: list[errclass.Event] = []
    with capture_outcomes() as events:
        got = _drive(kind, (*(HostileSink(h) for h in hostile), seen.append), fail)
    if fail is None:
        assert got.error is None, got.error
        assert got.value == "value"
    else:
        assert got.error is fail
    assert len([e for e in events if e.producer.startswith(f"hostile.{kind}.")]) == 1
    assert len(seen) == 1
    _check_closed_labels()
