"""Consumer-side fan-out: parallel fetches where one failure never cancels its in-flight siblings.

``asyncio.TaskGroup``, anyio task groups and Go's errgroup cancel every sibling
when one child fails. For fetches of streams that turns one failure into a
``client_gone`` at every peer and throws away work already paid for. Here each
child ends on its own (done, failed, or past its own timeout); only the
caller's cancellation reaches the children, and not even that when detached.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from time import perf_counter
from typing import Any, Generic, Literal, TypeVar

from . import _deadline, _trace
from ._names import caller_name
from ._options import DEFAULT_LOGGER, check, resolve_sinks
from ._policy import Policy
from ._record import Tracker
from ._sinks import LoggingSink, Sink

T = TypeVar("T")
AfterFailure = Literal["skip", "start"]

_MISSING: Any = object()


class FanoutError(BaseExceptionGroup[BaseException]):
    """Some children of a fan-out failed.

    ``exceptions`` holds every failure in input order (the very objects the
    children raised); ``indices[k]`` is the input position of ``exceptions[k]``.
    ``results`` maps the position of each child that succeeded to its result;
    ``not_started`` lists the positions of children that never ran. It is an
    ``ExceptionGroup`` (``except*``, ``except Exception``) unless a child ended
    with a ``BaseException`` such as a stray ``CancelledError``.
    """

    indices: tuple[int, ...]
    results: dict[int, Any]
    not_started: tuple[int, ...]

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[BaseException],
        indices: Iterable[int] = (),
        results: dict[int, Any] | None = None,
        not_started: Iterable[int] = (),
    ) -> FanoutError:
        plain = cls is FanoutError and all(isinstance(e, Exception) for e in exceptions)
        self = super().__new__(_FanoutExceptionGroup if plain else cls, message, exceptions)
        self.indices = tuple(indices)
        self.results = dict(results or {})
        self.not_started = tuple(not_started)
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[BaseException],
        indices: Iterable[int] = (),
        results: dict[int, Any] | None = None,
        not_started: Iterable[int] = (),
    ) -> None:
        super().__init__(message, exceptions)


class _FanoutExceptionGroup(FanoutError, ExceptionGroup[Exception]):
    """The usual kind: every failure is an ``Exception``."""


# Tracebacks and reprs show the name users catch.
_FanoutExceptionGroup.__name__ = _FanoutExceptionGroup.__qualname__ = "FanoutError"


def default_sink() -> Sink:
    """``errclass_fetch_outcomes_total{fanout, reason}`` in the default registry.

    A counter of its own, not ``errclass_outcomes_total``: when both ends run
    errclass, one transfer would otherwise be counted twice in the same metric.
    """
    from ._sinks._prometheus import shared_sink

    return shared_sink(
        "errclass_fetch_outcomes",
        "Outcomes of errclass.fanout children (consumer role) by reason.",
        producer_label="fanout",
    )


class _Run(Generic[T]):
    """One fan-out call: which child starts next, and how each one ended."""

    __slots__ = (
        "caller_cancelled", "children", "errors", "limit", "next", "results",
        "skip", "stop", "timeout", "tracker", "unstarted",
    )  # fmt: skip

    def __init__(
        self,
        children: list[Any],
        timeout: float | None,
        limit: int,
        after_failure: AfterFailure,
        tracker: Tracker,
    ) -> None:
        self.children, self.timeout, self.limit, self.tracker = children, timeout, limit, tracker
        self.skip = after_failure == "skip"
        self.results: list[Any] = [_MISSING] * len(children)
        self.errors: dict[int, BaseException] = {}
        self.unstarted: set[int] = set()
        self.next = 0
        self.stop = False  # start nothing more
        self.caller_cancelled = False

    def take(self) -> int | None:
        """The position of the next child to start, or None."""
        if self.stop or self.next >= len(self.children):
            return None
        self.next += 1
        return self.next - 1

    def failed(self, i: int, exc: BaseException) -> None:
        self.errors[i] = exc
        if self.skip:
            self.stop = True

    def awaitable(self, i: int) -> Awaitable[Any]:
        child = self.children[i]
        return child() if callable(child) else child  # type: ignore[no-any-return]

    def not_started(self) -> list[int]:
        """Positions that never ran; their coroutine objects are closed unawaited."""
        out = sorted(self.unstarted.union(range(self.next, len(self.children))))
        for i in out:
            if inspect.iscoroutine(self.children[i]):
                self.children[i].close()
        return out

    def error(self) -> FanoutError:
        order = sorted(self.errors)
        skipped = self.not_started()
        n = len(self.children)
        message = f"{len(order)} of {n} fanout children failed"
        if skipped:
            message += f", {len(skipped)} not started"
        results = {i: r for i, r in enumerate(self.results) if r is not _MISSING}
        return FanoutError(message, [self.errors[i] for i in order], order, results, skipped)

    def outcome(self) -> list[T]:
        if self.errors:
            raise self.error()
        return self.results


def _setup(
    children: object,
    *,
    timeout: object,
    limit: object,
    after_failure: object,
    name: str | None,
    sinks: Iterable[object] | None,
    policy: Policy | None,
    logger: Any,
    accept: Callable[[object], bool],
    kinds: str,
) -> _Run[Any]:
    """Validate the arguments of a fan-out call and build its run."""
    if isinstance(children, str | bytes) or not isinstance(children, Iterable):
        raise TypeError(f"fanout children must be an iterable of {kinds}, got {children!r}")
    items = list(children)
    bad = [c for c in items if not accept(c)]
    if bad:
        for c in items:  # never leave a coroutine unawaited
            if inspect.iscoroutine(c):
                c.close()
        raise TypeError(
            f"fanout children must be {kinds}, got {bad[0]!r}"
            + (" (a task or future is already running: pass the coroutine function)"
               if isinstance(bad[0], asyncio.Future) else "")
        )  # fmt: skip
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
    check(policy, "consumer", name, what="fanout ")
    tracker = Tracker(name or caller_name(2), "consumer", policy, _sinks(sinks, logger))
    seconds = None if math.isinf(timeout) else float(timeout)
    return _Run(items, seconds, limit, after_failure, tracker)


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


async def fanout(
    children: Iterable[Callable[[], Awaitable[T]] | Awaitable[T]],
    *,
    timeout: float,
    limit: int = 8,
    detached: bool = False,
    after_failure: AfterFailure = "skip",
    name: str | None = None,
    sinks: Iterable[object] | None = None,
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
) -> list[T]:
    """Run *children* at most *limit* at a time; return their results in input order.

    Each child is a zero-argument callable returning an awaitable (e.g.
    ``functools.partial(fetch, url)``) or a coroutine. A failing child never
    cancels its siblings: each one finishes, fails, or exceeds its own
    *timeout* (seconds from its start; required). When any failed, a
    ``FanoutError`` (an ``ExceptionGroup``) holds every failure in input order,
    after every child has ended. ``after_failure="skip"`` (the default) starts
    no new child after a failure, ``"start"`` runs them all.

    Cancelling the caller cancels every running child and re-raises the
    caller's ``CancelledError`` once they have ended. With ``detached=True``
    the running ones finish (each still bounded by *timeout*) before it is
    re-raised; children not yet running never start.

    Each child's outcome is classified in the consumer role and recorded in
    *sinks* (default: ``errclass_fetch_outcomes_total{fanout, reason}``) under
    *name* (default: the calling function). Runs on asyncio, and on trio
    through anyio.
    """
    if not isinstance(detached, bool):
        raise TypeError(f"fanout detached= must be True or False, got {detached!r}")
    run = _setup(
        children, timeout=timeout, limit=limit, after_failure=after_failure, name=name,
        sinks=sinks, policy=policy, logger=logger, accept=_is_async_child,
        kinds="zero-argument callables returning awaitables, or coroutines",
    )  # fmt: skip
    if _library() == "asyncio":
        return await _AsyncioFanout(run, detached).wait()
    return await _anyio_fanout(run, detached)


def _library() -> str:
    try:
        import sniffio
    except ImportError:  # no anyio either, so asyncio is all there is
        return "asyncio"
    return sniffio.current_async_library()


class _AsyncioFanout:
    """One task per child (its own context, as with gather). A finishing child
    starts the next; the caller waits until every task is done.

    All children share one timeout, so their deadlines come in start order: one
    timer over a FIFO replaces a timer per child (the cost that matters with
    many short children)."""

    __slots__ = (
        "active", "context", "deadlines", "detached", "idle", "late", "loop", "run",
        "tasks", "timer",
    )  # fmt: skip

    def __init__(self, run: _Run[Any], detached: bool) -> None:
        self.run, self.detached = run, detached
        self.loop = asyncio.get_running_loop()
        self.tasks: dict[asyncio.Task[None], int] = {}
        self.active = 0  # children started whose wrapper has not returned
        self.idle: asyncio.Future[None] | None = None
        self.deadlines: deque[tuple[float, asyncio.Task[None]]] = deque()
        self.late: set[asyncio.Task[None]] = set()
        self.timer: asyncio.TimerHandle | None = None
        with _deadline.watching(self):  # children classify their own timeout as a deadline
            self.context = contextvars.copy_context()

    def expired(self) -> bool:
        """For the classifier: is the current child past its own timeout?"""
        return asyncio.current_task() in self.late

    async def wait(self) -> list[Any]:
        run = self.run
        self.start_more()
        try:
            await self.drain()
        except asyncio.CancelledError as cancelled:
            # Never swallowed, never uncancelled: re-raised once every child ended.
            run.stop = run.caller_cancelled = True
            self.cancel_children()
            with _shielded():
                await self.drain(on_cancel=self.cancel_children)
            if run.errors:  # nothing lost: the failures ride along as the cause
                raise cancelled from run.error()
            run.not_started()
            raise
        finally:
            if self.timer is not None:
                self.timer.cancel()
        return run.outcome()

    async def drain(self, on_cancel: Callable[[], None] | None = None) -> None:
        """Wait until every child task is done; with *on_cancel*, through cancellations."""
        while self.tasks:
            self.idle = self.loop.create_future()
            try:
                await self.idle
            except asyncio.CancelledError:
                if on_cancel is None:
                    raise
                on_cancel()

    def cancel_children(self) -> None:
        if not self.detached:
            for task in self.tasks:
                task.cancel()

    def start_more(self) -> None:
        run = self.run
        if self.active >= run.limit or run.stop or run.next >= len(run.children):
            return  # the common case when a child ends: cheap
        end = None if run.timeout is None else self.loop.time() + run.timeout
        while self.active < run.limit and (i := run.take()) is not None:
            task = self.loop.create_task(self.child(i), context=self.context.copy())
            self.active += 1
            self.tasks[task] = i
            task.add_done_callback(self.finished)
            if end is not None:
                self.deadlines.append((end, task))
                if self.timer is None:
                    self.arm()

    def finished(self, task: asyncio.Task[None]) -> None:
        i = self.tasks.pop(task)
        deadlines = self.deadlines
        while deadlines and deadlines[0][1].done():  # keep no finished task alive
            deadlines.popleft()
        if task.cancelled():  # cancelled before its first step: it never ran
            self.run.unstarted.add(i)
            self.active -= 1
            self.start_more()
        if not self.tasks and self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def arm(self) -> None:
        while self.deadlines and self.deadlines[0][1].done():
            self.deadlines.popleft()
        when = self.deadlines[0][0] if self.deadlines else None
        self.timer = None if when is None else self.loop.call_at(when, self.fire)

    def fire(self) -> None:
        now = self.loop.time()
        while self.deadlines and self.deadlines[0][0] <= now:
            task = self.deadlines.popleft()[1]
            if not task.done():
                self.late.add(task)
                task.cancel()
        self.arm()

    async def child(self, i: int) -> None:
        run = self.run
        if run.caller_cancelled:  # detached, but not yet running: do not start
            run.unstarted.add(i)
            self.active -= 1
            return
        tracker = run.tracker
        t0 = perf_counter() if tracker.timed else 0.0  # Tracker.start(), inlined: per child
        ctx = _trace.capture() if tracker.traced else None
        try:
            result = await run.awaitable(i)
        except asyncio.CancelledError as e:
            self.cancelled(i, e, t0, ctx)
            return
        except BaseException as e:
            tracker.fail(e, t0, ctx)
            run.failed(i, e)
            if not isinstance(e, Exception):
                raise  # KeyboardInterrupt, SystemExit: stop the loop as asyncio does
            return
        finally:
            self.active -= 1
            self.start_more()  # now, not a loop iteration later in a done callback
        tracker.ok(t0, ctx)
        run.results[i] = result

    def cancelled(self, i: int, exc: asyncio.CancelledError, t0: float, ctx: Any) -> None:
        run = self.run
        if self.expired():  # reported as asyncio.timeout() does
            error: BaseException = TimeoutError(f"fanout child {i} exceeded {run.timeout}s")
            error.__cause__ = exc
        else:
            error = exc
        run.tracker.fail(error, t0, ctx)
        if error is not exc or self.detached or not run.caller_cancelled:
            run.failed(i, error)  # not the caller's cancellation: the child failed


def _shielded() -> AbstractContextManager[object]:
    """An anyio shield when anyio is in use: its cancel scopes re-deliver a
    cancellation every loop iteration, so waiting out the children would spin."""
    anyio = sys.modules.get("anyio")
    return nullcontext() if anyio is None else anyio.CancelScope(shield=True)


async def _anyio_fanout(run: _Run[Any], detached: bool) -> list[Any]:
    """The same on anyio (trio): a task group whose children never raise but cancellation."""
    import anyio
    from anyio.lowlevel import checkpoint_if_cancelled

    cancelled_class = anyio.get_cancelled_exc_class()
    slots = anyio.Semaphore(run.limit)

    async def child(i: int) -> None:
        try:
            if detached:  # like the seed's existence check: a cancelled caller starts nothing
                try:
                    await checkpoint_if_cancelled()
                except cancelled_class:
                    run.unstarted.add(i)
                    raise
            with anyio.CancelScope(shield=detached):
                await _anyio_child(run, i, cancelled_class)
        finally:
            slots.release()

    try:
        async with anyio.create_task_group() as tg:
            while True:
                await slots.acquire()
                i = run.take()
                if i is None:
                    slots.release()
                    break
                tg.start_soon(child, i)
    except BaseException:
        run.not_started()  # closes coroutines that will never be awaited
        raise
    return run.outcome()


async def _anyio_child(run: _Run[Any], i: int, cancelled_class: type[BaseException]) -> None:
    import anyio

    tracker = run.tracker
    t0, ctx = tracker.start()
    try:
        with (
            anyio.fail_after(run.timeout) as scope,
            _deadline.watching(_deadline.Expiry(lambda: scope.cancel_called)),
        ):
            result = await run.awaitable(i)
    except cancelled_class as e:
        tracker.fail(e, t0, ctx)
        raise  # anyio and trio need the cancellation to reach its scope
    except BaseException as e:
        tracker.fail(e, t0, ctx)
        run.failed(i, e)
        if not isinstance(e, Exception):
            raise
        return
    tracker.ok(t0, ctx)
    run.results[i] = result


def fanout_sync(
    children: Iterable[Callable[[], T]],
    *,
    timeout: float,
    limit: int = 8,
    after_failure: AfterFailure = "skip",
    name: str | None = None,
    sinks: Iterable[object] | None = None,
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
) -> list[T]:
    """``fanout`` over threads, for zero-argument callables.

    Threads cannot be cancelled. A child still running *timeout* seconds
    after its start is reported as ``TimeoutError`` (recorded
    ``deadline_exceeded``) and abandoned: its thread (a daemon) runs on and
    its late result is dropped, so give your HTTP client a timeout of its
    own no longer than *timeout*. When the waiting thread is interrupted
    (``KeyboardInterrupt``), no new child starts, the running ones are waited
    for (each bounded by *timeout*) and the interruption is re-raised.
    Each child runs in a copy of the caller's ``contextvars`` context.
    """
    run = _setup(
        children, timeout=timeout, limit=limit, after_failure=after_failure, name=name,
        sinks=sinks, policy=policy, logger=logger, accept=callable,
        kinds="zero-argument callables",
    )  # fmt: skip
    return _ThreadFanout(run).wait()


class _ThreadFanout:
    """Daemon threads. Under one lock, whoever settles a child first (the child,
    or the waiter when its timeout passed) records it, so it is recorded once."""

    def __init__(self, run: _Run[Any]) -> None:
        self.run = run
        self.cond = threading.Condition()
        self.running: dict[int, tuple[float, float, Any]] = {}  # i -> (deadline, t0, ctx)
        self.bound = math.inf if run.timeout is None else run.timeout

    def wait(self) -> list[Any]:
        try:
            self.drain()
        except BaseException:
            self.run.stop = True
            self.drain()  # a second interrupt leaves the rest running
            raise
        return self.run.outcome()

    def drain(self) -> None:
        with self.cond:
            self.start_more()
            while self.running:
                now = time.monotonic()
                for i in [i for i, (end, _, _) in self.running.items() if end <= now]:
                    self.timed_out(i)
                self.start_more()
                if self.running:
                    first = min(end for end, _, _ in self.running.values())
                    self.cond.wait(None if math.isinf(first) else first - now)

    def start_more(self) -> None:
        run = self.run
        while len(self.running) < run.limit and (i := run.take()) is not None:
            t0, ctx = run.tracker.start()
            self.running[i] = (time.monotonic() + self.bound, t0, ctx)
            name = f"errclass-fanout-{run.tracker.producer}-{i}"
            target = contextvars.copy_context().run
            thread = threading.Thread(target=target, args=(self.child, i), name=name, daemon=True)
            try:
                thread.start()  # the child cannot settle before we release the lock
            except RuntimeError:  # "can't start new thread": it never ran
                del self.running[i]
                run.unstarted.add(i)
                raise

    def child(self, i: int) -> None:
        error: BaseException | None = None
        try:
            result = self.run.children[i]()
        except BaseException as e:
            error = e
        with self.cond:
            started = self.running.pop(i, None)
            if started is None:  # its timeout was recorded already: drop the late result
                return
            _, t0, ctx = started
            if error is None:
                self.run.tracker.ok(t0, ctx)
                self.run.results[i] = result
            else:
                self.run.tracker.fail(error, t0, ctx)
                self.run.failed(i, error)
            self.cond.notify()

    def timed_out(self, i: int) -> None:
        _, t0, ctx = self.running.pop(i)
        error = TimeoutError(f"fanout child {i} did not finish within {self.run.timeout}s")
        self.run.tracker.fail(error, t0, ctx)
        self.run.failed(i, error)
