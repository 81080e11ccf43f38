"""A tracked function takes its own signature: a wrong call fails at the call, as without errclass.

Without errclass, calling any of the four kinds of function with arguments that
do not bind raises ``TypeError`` at the call, before the body (or the coroutine
or generator object) exists: the producer never started, so nothing is recorded.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import pytest

import errclass
from errclass import Event


def _sync(a: int, /, b: int, *, c: int = 3) -> int:
    return a + b + c


async def _coro(a: int, /, b: int, *, c: int = 3) -> int:
    await asyncio.sleep(0)
    return a + b + c


def _gen(a: int, /, b: int, *, c: int = 3) -> Generator[int, None, None]:
    yield a + b + c


async def _agen(a: int, /, b: int, *, c: int = 3) -> AsyncGenerator[int, None]:
    yield a + b + c


KINDS: dict[str, Callable[..., Any]] = {
    "sync": _sync,
    "coroutine": _coro,
    "generator": _gen,
    "async generator": _agen,
}

WRONG_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((), {}),  # missing positional
    ((1,), {}),  # missing b
    ((1, 2, 3), {}),  # too many positional
    ((1,), {"b": 2, "d": 4}),  # unexpected keyword
    ((), {"a": 1, "b": 2}),  # a positional-only given by keyword
    ((1, 2), {"b": 2}),  # b given twice
]


def _message(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    with pytest.raises(TypeError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("args", "kwargs"), WRONG_CALLS)
def test_a_wrong_call_raises_at_the_call_with_the_same_message(
    sink: list[Event], kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain = KINDS[kind]
    tracked = errclass.track(sink.append, logger=None)(plain)
    assert _message(tracked, args, kwargs) == _message(plain, args, kwargs)
    assert sink == []  # the producer never started: nothing recorded


def test_methods_bind_self_like_the_plain_method(sink: list[Event]) -> None:
    class Handler:
        def get(self, x: int) -> int:
            return x

        tracked_get = errclass.track(sink.append, logger=None)(get)

    h = Handler()
    assert h.tracked_get(2) == 2
    assert _message(h.tracked_get, (), {}) == _message(h.get, (), {})
    bound = errclass.track(sink.append, logger=None)(h.get)
    assert bound(3) == 3
    for args, kwargs in [((), {}), ((1, 2), {}), ((), {"self": 1, "x": 2})]:
        assert _message(bound, args, kwargs) == _message(h.get, args, kwargs)
    assert bound.__wrapped__ == h.get  # type: ignore[attr-defined]
    assert inspect.signature(bound) == inspect.signature(h.get)
    assert bound.__self__ is h  # type: ignore[attr-defined]
    assert [e.outcome.reason.value for e in sink] == ["ok", "ok"]


async def test_bound_async_methods_keep_their_kind(sink: list[Event]) -> None:
    class Handler:
        async def get(self, x: int) -> int:
            return x

        async def items(self, x: int) -> AsyncGenerator[int, None]:
            yield x

        def lines(self, x: int) -> Generator[int, None, None]:
            yield x

    h, t = Handler(), errclass.track(sink.append, logger=None)
    for method in (h.get, h.items, h.lines):
        for check in (
            inspect.iscoroutinefunction,
            inspect.isasyncgenfunction,
            inspect.isgeneratorfunction,
        ):
            assert check(t(method)) == check(method)
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
            t(method)()  # type: ignore[call-arg]
    assert await t(h.get)(1) == 1
    assert [x async for x in t(h.items)(2)] == [2]
    assert list(t(h.lines)(3)) == [3]
    assert [e.outcome.reason.value for e in sink] == ["ok"] * 3


def test_defaults_are_passed_by_reference(sink: list[Event]) -> None:
    marker: list[int] = []

    def f(x: list[int] = marker, *, y: object = marker) -> tuple[object, object]:
        return x, y

    tracked = errclass.track(sink.append, logger=None)(f)
    got = tracked()
    assert got[0] is marker
    assert got[1] is marker


def test_parameter_names_that_clash_with_internals(sink: list[Event]) -> None:
    # Names the wrapper's own code might use, and builtins it calls.
    def f(  # noqa: PLR0917
        fn: int,
        tr: int,
        t0: int,
        ctx: int,
        e: int,
        result: int,
        inner: int,
        type: int,
        next: int,
        BaseException: int,
        _ec_fn: int,
        *args: int,
        **kwargs: int,
    ) -> int:
        return fn + tr + t0 + ctx + e + result + inner + type + next + BaseException + _ec_fn

    def g(  # noqa: PLR0917
        type: int,
        next: int,
        getattr: int,
        StopIteration: int,
        GeneratorExit: int,
        item: int,
        send: int,
        run: int,
    ) -> Generator[int, int, None]:
        sent = yield type + next + getattr + StopIteration + GeneratorExit + item + send + run
        yield sent

    t = errclass.track(sink.append, logger=None)
    assert t(f)(*range(11), 99, z=5) == sum(range(11))
    gen = t(g)(*range(8))
    assert next(gen) == sum(range(8))
    assert gen.send(42) == 42
    gen.close()
    assert [e.outcome.reason.value for e in sink] == ["ok", "client_gone"]


def test_very_many_parameters(sink: list[Event]) -> None:
    names = [f"p{i}" for i in range(300)]
    ns: dict[str, Any] = {}
    exec(f"def f({', '.join(names)}, *, k=1):\n    return [{', '.join(names)}, k]", ns)
    tracked = errclass.track(sink.append, logger=None)(ns["f"])
    assert tracked(*range(300)) == [*range(300), 1]
    assert _message(tracked, tuple(range(299)), {}) == _message(ns["f"], tuple(range(299)), {})


def test_callables_without_a_code_signature_still_work(sink: list[Event]) -> None:
    """partial, builtins, callable objects: the generic wrapper, as before."""

    def f(a: int, b: int) -> int:
        return a * b

    class Mul:
        def __call__(self, a: int, b: int) -> int:
            return a * b

    t = errclass.track(sink.append, logger=None)
    assert t(functools.partial(f, 2))(3) == 6
    assert t(Mul())(2, 4) == 8
    assert t(max)(1, 5) == 5
    assert t(staticmethod(f))(2, 5) == 10
    assert [e.outcome.reason.value for e in sink] == ["ok"] * 4


def test_hand_built_code_with_unwritable_names_gets_the_generic_wrapper(
    sink: list[Event],
) -> None:
    def f(a: int, b: int) -> tuple[int, int]:
        return a, b

    for odd in ("a-b", "class", "\ufb01"):  # not an identifier, a keyword, NFKC-changed
        g = types.FunctionType(f.__code__.replace(co_varnames=(odd, "b")), {})
        tracked = errclass.track(sink.append, logger=None)(g)
        assert tracked(1, 2) == (1, 2)
        assert tracked(**{odd: 1, "b": 2}) == (1, 2)
        assert tracked.__code__.co_flags & inspect.CO_VARARGS  # type: ignore[attr-defined]
    assert len(sink) == 6


@pytest.mark.parametrize("kind", KINDS)
def test_introspection_is_unchanged(kind: str) -> None:
    plain = KINDS[kind]
    tracked = errclass.track(logger=None)(plain)
    assert inspect.signature(tracked) == inspect.signature(plain)
    assert tracked.__wrapped__ is plain
    assert tracked.__name__ == plain.__name__
    assert tracked.__qualname__ == plain.__qualname__
    assert tracked.__annotations__ == plain.__annotations__
    for check in (
        inspect.iscoroutinefunction,
        inspect.isgeneratorfunction,
        inspect.isasyncgenfunction,
    ):
        assert check(tracked) == check(plain)


# The guarantees, through compiled wrappers of varied signatures and the generic one.

SHAPES: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]] | None] = {
    "none": ("", (), {}),
    "posonly-default": ("a, /, b=2", (1,), {}),
    "everything": ("a, /, b, *args, c, d=4, **kw", (1, 2, 3), {"c": 3, "e": 5}),
    "generic": None,  # functools.partial: the generic wrapper
}


def _build(shape: str, source: str) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """A function of *shape* whose body is *source*; the arguments to call it with."""
    spec = SHAPES[shape]
    params, args, kwargs = spec if spec is not None else ("a, b", (1,), {})
    ns: dict[str, Any] = {"asyncio": asyncio}
    exec(source.format(params=params), ns)
    fn = ns["f"]
    return (fn, args, kwargs) if spec is not None else (functools.partial(fn, 0), args, kwargs)


@pytest.mark.parametrize("shape", SHAPES)
async def test_cancellation_unchanged_for_any_signature(sink: list[Event], shape: str) -> None:
    fn, args, kwargs = _build(shape, "async def f({params}):\n    await asyncio.sleep(5)\n")
    slow = errclass.track(sink.append, logger=None)(fn)
    task = asyncio.current_task()
    assert task is not None
    before = task.cancelling()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await slow(*args, **kwargs)
    assert task.cancelling() == before
    inner = asyncio.ensure_future(slow(*args, **kwargs))
    await asyncio.sleep(0)
    inner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await inner
    assert [e.outcome.reason.value for e in sink] == ["client_gone", "client_gone"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_coroutine_value_and_exception_for_any_signature(
    sink: list[Event], shape: str
) -> None:
    source = "async def f({params}):\n    await asyncio.sleep(0)\n    return locals()\n"
    fn, args, kwargs = _build(shape, source)
    assert await errclass.track(sink.append, logger=None)(fn)(*args, **kwargs) == await fn(
        *args, **kwargs
    )
    err = BrokenPipeError()
    fn, args, kwargs = _build(shape, "async def f({params}):\n    raise err\n")
    fn_globals = (fn.func if isinstance(fn, functools.partial) else fn).__globals__
    fn_globals["err"] = err
    with pytest.raises(BrokenPipeError) as info:
        await errclass.track(sink.append, logger=None)(fn)(*args, **kwargs)
    assert info.value is err
    assert [e.outcome.reason.value for e in sink] == ["ok", "client_gone"]


ECHO = """\
def f({params}):
    try:
        while True:
            try:
                seen.append((yield len(seen)))
            except ValueError as e:
                seen.append(e)
    finally:
        seen.append("inner closed")
"""


@pytest.mark.parametrize("shape", SHAPES)
def test_send_throw_close_for_any_signature(sink: list[Event], shape: str) -> None:
    fn, args, kwargs = _build(shape, ECHO)
    seen: list[object] = []
    (fn.func if isinstance(fn, functools.partial) else fn).__globals__["seen"] = seen
    g = errclass.track(sink.append, logger=None)(fn)(*args, **kwargs)
    assert next(g) == 0
    assert g.send("a") == 1
    err = ValueError("thrown")
    assert g.throw(err) == 2
    assert seen == ["a", err]
    g.close()
    assert seen[-1] == "inner closed"
    assert [e.outcome.reason.value for e in sink] == ["client_gone"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_asend_athrow_aclose_for_any_signature(sink: list[Event], shape: str) -> None:
    fn, args, kwargs = _build(shape, "async " + ECHO)
    seen: list[object] = []
    (fn.func if isinstance(fn, functools.partial) else fn).__globals__["seen"] = seen
    g = errclass.track(sink.append, logger=None)(fn)(*args, **kwargs)
    assert await g.__anext__() == 0
    assert await g.asend("a") == 1
    err = ValueError("thrown")
    assert await g.athrow(err) == 2
    assert seen == ["a", err]
    await g.aclose()
    assert seen[-1] == "inner closed"
    assert [e.outcome.reason.value for e in sink] == ["client_gone"]
