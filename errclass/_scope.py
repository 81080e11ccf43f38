"""track() and stream(): own the producer's run, record exactly once, change nothing."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Generator, Iterable
from time import perf_counter
from types import AsyncGeneratorType, GeneratorType, TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from . import _client_state, _options, _record, _signature, _trace
from ._names import caller_name, qualified_name
from ._options import DEFAULT_LOGGER, check, resolve_sinks
from ._outcome import Role
from ._policy import Policy
from ._record import Tracker
from ._relay import Relay
from ._rule import PASS_THROUGH
from ._sinks._failures import contain

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class track:
    """Record how a producer ended, exactly once, without changing it.

    A decorator for functions, coroutine functions, generator functions and
    async generator functions, and a sync and async context manager::

        @errclass.track()               # errclass_outcomes_total{producer, reason}
        async def stream_subtree(request): ...

        with errclass.track(counter, name="upload"):
            ...

    *sinks*: prometheus_client Counters, ``PrometheusSink``/``OTelSink``/
    ``LoggingSink`` objects, or callables taking an ``errclass.Event``; none
    means the default counter. The ``errclass`` logger is added unless
    ``logger=None`` (or another ``LoggingSink`` is given). The producer name is
    ``name`` or ``module.qualname`` of the decorated function (for a context
    manager, of the function that called ``track()``). A context manager binds
    its sinks at its first entry; later ``with`` blocks reuse them.
    """

    __slots__ = ("_bound", "_entered", "_name", "_policy", "_role", "_sinks", "_site")

    def __init__(
        self,
        *sinks: object,
        policy: Policy | None = None,
        role: Role = "producer",
        name: str | None = None,
        logger: logging.Logger | str | None = DEFAULT_LOGGER,
    ) -> None:
        check(policy, role, name)
        self._sinks = resolve_sinks(sinks, logger)
        self._policy, self._role = policy, role
        self._name = name
        # Without a name, a context manager is named for the function that made it.
        self._site = caller_name(1) if name is None else name
        self._entered: tuple[Tracker, float, Any] | None = None
        self._bound: Tracker | None = None  # the context manager's, bound at first entry

    def _tracker(self, name: str) -> Tracker:
        return Tracker(name, self._role, self._policy, self._sinks)

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    @overload
    def __call__(self, fn: object) -> Any: ...

    def __call__(self, fn: Any) -> Any:
        if not callable(fn):
            raise TypeError(
                f"errclass.track() decorates callables, got {fn!r} "
                "(did you write @errclass.track instead of @errclass.track()?)"
            )
        return wrap(fn, self._tracker(self._name or qualified_name(fn)))

    # Context manager: one entry per object, like open().
    def __enter__(self) -> track:
        self._enter()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)

    async def __aenter__(self) -> track:
        self._enter()
        return self

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)

    def _enter(self) -> None:
        if self._entered is not None:
            raise RuntimeError(
                "this errclass.track() is already entered; create one per with block"
            )
        # Sinks are bound once per track object, as for a decorated function.
        tracker = self._bound
        if tracker is None:
            tracker = self._bound = self._tracker(self._site)
        t0, ctx = tracker.start()
        self._entered = (tracker, t0, ctx)

    def _exit(self, exc: BaseException | None) -> None:
        entered, self._entered = self._entered, None
        if entered is None:
            return
        tracker, t0, ctx = entered
        if exc is None:
            tracker.ok(t0, ctx)
        else:
            tracker.fail(exc, t0, ctx)


def wrap(fn: Callable[P, R], tracker: Tracker) -> Callable[P, R]:
    """Wrap *fn* by kind. Dispatch order as stamina: generator, async generator,
    plain function, coroutine function."""
    if inspect.isgeneratorfunction(fn):
        return _wrap_gen(fn, tracker)
    if inspect.isasyncgenfunction(fn):
        return _wrap_agen(fn, tracker)
    if not inspect.iscoroutinefunction(fn):
        return _wrap_sync(fn, tracker)
    return _wrap_coro(fn, tracker)


def _wrap_sync(fn: Callable[P, R], tr: Tracker) -> Callable[P, R]:
    # Runs on every call: closure cells, not attribute loads. ``tr.ok``/``tr.fail``
    # are the closures chosen for this tracker's sinks when it was made
    # (structlog's way). _trace.capture()'s test and the fast ok of one pre-bound
    # counter child (Tracker.fast_ok, as _record._fast_ok does it) are inlined:
    # one Python call fewer on success (bench/bench_core.py). The body is
    # _signature._sync_template's, compiled with *fn*'s own parameters and
    # specialised for this tracker.
    return _signature.compile_wrapper("sync", fn, **_cells(tr))


def _wrap_coro(fn: Callable[P, Any], tr: Tracker) -> Callable[P, Any]:
    return _signature.compile_wrapper("coro", fn, **_cells(tr))  # as above


def _cells(tr: Tracker) -> dict[str, Any]:
    return {
        "timed": tr.timed,
        "traced": tr.traced,
        "ok": tr.ok,
        "fail": tr.fail,
        "inc": tr.fast_ok,
        "sink_kind": tr.fast_ok_kind,  # what a failing inc() is counted under
        "otel": _trace.trace,  # loaded when traced
        "current": _trace.get_current,
        "captures": _record.captures,
        "alive": _client_state.alive,
        "active": _client_state.active,
    }


def _wrap_gen(fn: Callable[P, Any], tr: Tracker) -> Callable[P, Any]:
    """*fn* returns any iterator; the wrapper (_signature._GEN) forwards
    send/throw/close to it as ``yield from`` would (PEP 380), but a
    GeneratorExit *subclass* thrown in goes to inner.throw() as that very object,
    as it would without errclass; only GeneratorExit itself, close(), closes inner.
    A generator is delegated to with ``yield from`` a Relay (_relay), so each item
    is forwarded in C, until such a subclass is thrown in; from then on, and for
    any other iterator, a Python loop forwards each item (a generator's
    send(None) is next(): one call per item). The body runs at the first
    ``next()``: a generator never started records nothing. A plain iterator has
    no throw() to end it: it is closed in the wrapper's ``finally``, before
    recording, since close() may raise instead."""
    return _signature.compile_wrapper("gen", fn, tr=tr)


def _wrap_agen(fn: Callable[P, Any], tr: Tracker) -> Callable[P, Any]:
    """*fn* returns any async iterator; the wrapper (_signature._AGEN) forwards
    ``asend``/``athrow``/``aclose`` to it (as _wrap_gen), closes it in its own
    ``finally`` and records exactly once. An async generator is iterated with
    ``async for`` (each ``__anext__`` from C, not a call of a bound method);
    another async iterator (from stream()) with its ``__anext__``, looked up once."""
    return _signature.compile_wrapper("agen", fn, tr=tr)


async def _aclose(inner: Any) -> None:
    aclose = getattr(inner, "aclose", None)
    if aclose is not None:
        await aclose()


class Stream(Iterable[T]):
    """A sync iterable under errclass.stream(): iterate it (WSGI, a thread) or
    ``async for`` it on asyncio (Starlette then runs each ``next()`` in a worker
    thread, and the inner iterator is closed as soon as the stream is cancelled
    or closed, not when the garbage collector gets to it). ``close()``
    closes the inner iterator; an early close records ``client_gone``."""

    __slots__ = ("_gen", "_inner", "_tracker")

    def __init__(self, inner: Iterable[T], tracker: Tracker) -> None:
        self._inner, self._tracker = inner, tracker
        self._gen: Any = None

    def __iter__(self) -> Generator[T, Any, Any]:
        if self._gen is not None:
            raise RuntimeError("an errclass.stream() can be iterated once")
        self._gen = _wrap_gen(iter, self._tracker)(self._inner)
        return self._gen  # type: ignore[no-any-return]

    def __aiter__(self) -> AsyncGenerator[T, Any]:
        if self._gen is not None:
            raise RuntimeError("an errclass.stream() can be iterated once")
        self._gen = _wrap_agen(_threaded, self._tracker)(iter(self._inner))
        return self._gen  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
        else:
            _close(self._inner)


async def _threaded(inner: Any) -> AsyncGenerator[Any, Any]:
    """Each ``next()`` in a worker thread. On cancellation the step in flight is
    awaited (a thread cannot be stopped), so the inner iterator is closed before
    the cancellation propagates; if cancelled again, it is closed when the step ends."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "async iteration of a sync errclass.stream() needs asyncio; under trio, "
            "hand errclass.stream() an async iterable instead"
        ) from None
    done = object()
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            ctx = contextvars.copy_context()
            step = loop.run_in_executor(None, ctx.run, _next, inner, done)
            try:
                item = await asyncio.shield(step)
            except asyncio.CancelledError:
                await asyncio.wait((step,))
                raise
            if item is done:
                return
            yield item
    finally:
        if step is None or step.done():
            _close(inner)
        else:
            step.add_done_callback(lambda _: _close(inner))


def _next(inner: Any, default: object) -> Any:
    return next(inner, default)


def _close(inner: object) -> None:
    close = getattr(inner, "close", None)
    if callable(close):
        close()


@overload
def stream(
    iterable: AsyncIterable[T],
    *sinks: object,
    policy: Policy | None = ...,
    role: Role = ...,
    name: str | None = ...,
    logger: logging.Logger | str | None = ...,
) -> AsyncGenerator[T, Any]: ...
@overload
def stream(
    iterable: Iterable[T],
    *sinks: object,
    policy: Policy | None = ...,
    role: Role = ...,
    name: str | None = ...,
    logger: logging.Logger | str | None = ...,
) -> Stream[T]: ...


def stream(
    iterable: Any,
    *sinks: object,
    policy: Policy | None = None,
    role: Role = "producer",
    name: str | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
) -> Any:
    """Wrap an iterable you hand to a framework (e.g. a StreamingResponse body).

    It owns iteration and closes the inner iterator in its own ``finally``, so
    an early stop is recorded when it happens, not when the garbage collector
    gets to it; under the ASGI or aiohttp middleware it is also closed when the
    request ends. An async iterable gives an async generator (``asend``/``athrow``
    forwarded); a sync one gives a ``Stream`` that is iterable both ways.
    Sinks and options are those of ``track()``; *name* defaults to the calling
    function.
    """
    check(policy, role, name)  # first: a falsy bad name (0, b"") is not "no name"
    tracker = _options.tracker(
        name or caller_name(1), *sinks, role=role, policy=policy, logger=logger
    )
    wrapped: Any
    if hasattr(iterable, "__aiter__"):
        wrapped = _wrap_agen(type(iterable).__aiter__, tracker)(iterable)
    elif hasattr(iterable, "__iter__"):
        wrapped = Stream(iterable, tracker)
    else:
        raise TypeError(f"errclass.stream() needs an iterable or async iterable, got {iterable!r}")
    # Under an integration's request (ASGI, aiohttp), closed when it ends, not at GC.
    _client_state.adopt(wrapped)
    return wrapped


# The names the compiled wrapper bodies read (see _signature).
_signature.provide(
    perf_counter=perf_counter,
    capture=_trace.capture,
    pending=_client_state.pending,
    close=_close,
    aclose=_aclose,
    GeneratorType=GeneratorType,
    AsyncGeneratorType=AsyncGeneratorType,
    Relay=Relay,
    PASS_THROUGH=PASS_THROUGH,
    contain=contain,
)
