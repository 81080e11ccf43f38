"""Consumer-side fan-out: parallel fetches where one failure never cancels its in-flight siblings.

``asyncio.TaskGroup``, anyio task groups and Go's errgroup cancel every sibling
when one child fails. For fetches of streams that turns one failure into a
``client_gone`` at every peer and throws away work already paid for. Here each
child ends on its own (done, failed, or past its own timeout); only the
caller's cancellation reaches the children, and not even that when detached.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from ._fanout_run import CHILD, AfterFailure, FanoutError, Run
from ._fanout_sink import default_sink
from ._names import caller_name
from ._options import DEFAULT_LOGGER, check, resolve_sinks
from ._policy import Policy
from ._record import Tracker
from ._sinks import LoggingSink, Sink

__all__ = ["FanoutError", "default_sink", "detached", "fanout", "fanout_sync"]

T = TypeVar("T")


def fanout(
    children: Iterable[Callable[[], Awaitable[T]] | Awaitable[T]],
    *,
    timeout: float,
    limit: int = 8,
    detached: bool = False,
    after_failure: AfterFailure = "skip",
    fail_fast: bool = False,
    name: str | None = None,
    sinks: Iterable[object] | None = None,
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
) -> Coroutine[Any, Any, list[T]]:
    """Run *children* at most *limit* at a time; return their results in input order.

    Await it (``await errclass.fanout(...)``). Each child is a zero-argument
    async callable (e.g. ``functools.partial(fetch, url)``) or a coroutine. A
    failing child never cancels its siblings: each one finishes, fails, or
    exceeds its own *timeout* (seconds from its start; required). When any
    failed, a ``FanoutError`` (an ``ExceptionGroup``) holds every failure in
    input order, after every child has ended; with ``fail_fast=True`` the first
    failure (in time) is raised alone, as Go's errgroup returns it, still
    without cancelling the siblings. ``after_failure="skip"`` (the default)
    starts no new child after a failure, ``"start"`` runs them all.

    Cancelling the caller cancels every running child and re-raises the
    caller's cancellation once they have ended; when children had failed, a
    ``FanoutError`` of those failures with the cancellation last is raised
    instead, on asyncio and trio alike. With ``detached=True`` the running ones
    finish (each still bounded by *timeout*) first; children not yet running
    never start.

    Each child's outcome is classified in the consumer role and recorded in
    *sinks* (default: ``errclass_fetch_outcomes_total{fanout, reason,
    cancelled}``) under *name* (default: the function calling ``fanout()``).
    Runs on asyncio, and on trio through anyio.
    """
    if not isinstance(detached, bool):
        raise TypeError(f"fanout detached= must be True or False, got {detached!r}")
    run = _setup(
        children, timeout=timeout, limit=limit, after_failure=after_failure,
        fail_fast=fail_fast, name=name or caller_name(1), sinks=sinks, policy=policy,
        logger=logger, accept=_is_async_child, sync=False,
    )  # fmt: skip
    return _run_async(run, detached)


async def _run_async(run: Run[Any], detached: bool) -> list[Any]:
    if _library() == "asyncio":
        from ._fanout_asyncio import AsyncioFanout

        return await AsyncioFanout(run, detached).wait()
    from ._fanout_anyio import anyio_fanout

    return await anyio_fanout(run, detached)


def fanout_sync(
    children: Iterable[Callable[[], T]],
    *,
    timeout: float,
    limit: int = 8,
    after_failure: AfterFailure = "skip",
    fail_fast: bool = False,
    name: str | None = None,
    sinks: Iterable[object] | None = None,
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
) -> list[T]:
    """``fanout`` over threads, for zero-argument sync callables.

    The children run on daemon worker threads that errclass keeps and reuses
    across calls, so thread-local clients are reused. Threads cannot be
    cancelled: a child still running *timeout* seconds after its start is
    reported as ``TimeoutError`` (recorded ``deadline_exceeded``) and abandoned
    with its worker: it runs on and its late result is dropped, so give your
    HTTP client a timeout of its own no longer than *timeout*. When the waiting
    thread is interrupted (``KeyboardInterrupt``), no new child starts, the
    running ones are waited for (each bounded by *timeout*) and the
    interruption is re-raised. Each child runs in a copy of the caller's
    ``contextvars`` context.
    """
    run = _setup(
        children, timeout=timeout, limit=limit, after_failure=after_failure,
        fail_fast=fail_fast, name=name or caller_name(1), sinks=sinks, policy=policy,
        logger=logger, accept=callable, sync=True,
    )  # fmt: skip
    from ._fanout_threads import ThreadFanout

    return ThreadFanout(run).wait()


async def detached(fn: Callable[[], Awaitable[T]]) -> T:
    """Inside a fanout child: run ``fn()`` to completion even if the caller is
    cancelled (Go's ``context.WithoutCancel``), still bounded by the child's
    own timeout. Its result or failure is the child's, as if not detached.

    For the seed's two-phase child: a cancellable existence check, then the
    fetch that must not be cut once it started::

        async def fetch_and_store(h):
            if await store.exists(h):            # a cancelled caller stops here
                return None
            return await errclass.detached(functools.partial(fetch, h))
    """
    child = CHILD.get()
    if child is None:
        raise RuntimeError(
            "errclass.detached() runs inside an errclass.fanout child: that child's "
            "timeout bounds it, and the fan-out re-raises the caller's cancellation"
        )
    if not callable(fn) or inspect.iscoroutine(fn):
        raise TypeError(f"errclass.detached() takes a zero-argument async callable, got {fn!r}")
    if _library() == "asyncio":
        from . import _fanout_asyncio

        result: T = await _fanout_asyncio.detached(fn, child)
    else:
        from . import _fanout_anyio

        result = await _fanout_anyio.detached(fn, child)
    return result


def _setup(
    children: object,
    *,
    timeout: object,
    limit: object,
    after_failure: object,
    fail_fast: object,
    name: str,
    sinks: Iterable[object] | None,
    policy: Policy | None,
    logger: Any,
    accept: Callable[[object], bool],
    sync: bool,
) -> Run[Any]:
    """Validate the arguments of a fan-out call and build its run."""
    items = _children(children, accept, sync)
    bound = (
        f"fanout timeout= must be a positive number of seconds per child, got {timeout!r}; "
        "each child needs its own bound, so a stuck peer cannot hold the call forever "
        "(math.inf opts out explicitly)"
    )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(bound)
    if not timeout > 0:  # also NaN
        raise ValueError(bound)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"fanout limit= must be a positive integer, got {limit!r}")
    if after_failure not in ("skip", "start"):
        raise ValueError(f"fanout after_failure= must be 'skip' or 'start', got {after_failure!r}")
    if not isinstance(fail_fast, bool):
        raise TypeError(f"fanout fail_fast= must be True or False, got {fail_fast!r}")
    check(policy, "consumer", name, what="fanout ")
    tracker = Tracker(name, "consumer", policy, _sinks(sinks, logger))
    seconds = None if math.isinf(timeout) else float(timeout)
    return Run(items, seconds, limit, after_failure, fail_fast=fail_fast, tracker=tracker)


def _children(children: object, accept: Callable[[object], bool], sync: bool) -> list[Any]:
    kinds = "zero-argument callables" if sync else (
        "zero-argument callables returning awaitables, or coroutines"
    )  # fmt: skip
    if isinstance(children, str | bytes) or not isinstance(children, Iterable):
        raise TypeError(f"fanout children must be an iterable of {kinds}, got {children!r}")
    items = list(children)
    bad = next((c for c in items if not accept(c)), None)
    if bad is not None or (sync and any(_is_async_callable(c) for c in items)):
        for c in items:  # never leave a coroutine unawaited
            if inspect.iscoroutine(c):
                c.close()
    if bad is not None:
        raise TypeError(
            f"fanout children must be {kinds}, got {bad!r}"
            + (" (a task or future is already running: pass the coroutine function)"
               if isinstance(bad, asyncio.Future) else "")
        )  # fmt: skip
    if sync:
        for i, c in enumerate(items):
            if _is_async_callable(c):
                raise TypeError(
                    f"fanout_sync child {i} ({c!r}) is an async callable: "
                    "use errclass.fanout (and await it) for async callables"
                )
    return items


def _sinks(sinks: Iterable[object] | None, logger: Any) -> tuple[Sink, ...]:
    """As track() resolves them, but the default is the fetch counter, and none means none."""
    chosen = (default_sink(),) if sinks is None else tuple(sinks)
    if chosen:
        return resolve_sinks(chosen, logger)
    if logger is None:
        return ()
    return (LoggingSink(None if logger is DEFAULT_LOGGER else logger),)


def _is_async_child(c: object) -> bool:
    return inspect.iscoroutine(c) or (callable(c) and not isinstance(c, asyncio.Future))


def _is_async_callable(c: object) -> bool:
    """A coroutine or async generator function, also through partial() or a class's __call__."""
    if inspect.iscoroutinefunction(c) or inspect.isasyncgenfunction(c):
        return True
    # A callable object whose class defines ``async def __call__``.
    return not inspect.isfunction(c) and inspect.iscoroutinefunction(
        inspect.getattr_static(type(c), "__call__", None)
    )


def _library() -> str:
    try:
        import sniffio
    except ImportError:  # no anyio either, so asyncio is all there is
        return "asyncio"
    return sniffio.current_async_library()
