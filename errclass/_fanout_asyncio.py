"""The fan-out on asyncio: one task per child, one timer for every child's timeout."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from time import perf_counter
from typing import Any

from . import _deadline, _trace
from ._fanout_run import CHILD, Child, Run, cut

_SHARED = 0.001  # s: children started this close together share one Child (start_more)


class _Late:
    """The children cut at their own timeout. This, not the fan-out, is what the
    children's context holds: a fan-out in its own context would be a reference
    cycle, kept (with every child it ran) until the garbage collector finds it."""

    __slots__ = ("tasks",)

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def expired(self) -> bool:
        """For the classifier: is the current child past its own timeout?"""
        return asyncio.current_task() in self.tasks


class AsyncioFanout:
    """One task per child (its own context, as with gather). A finishing child
    starts the next; the caller waits until every task is done.

    All children share one timeout, so their deadlines come in start order: one
    timer over a FIFO replaces a timer per child (the cost that matters with
    many short children)."""

    __slots__ = (
        "active", "context", "detached", "due", "ends", "finishing", "idle", "late", "loop",
        "run", "shared", "tasks", "timer",
    )  # fmt: skip

    def __init__(self, run: Run[Any], detached: bool) -> None:
        self.run, self.detached = run, detached
        self.loop = asyncio.get_running_loop()
        self.tasks: dict[asyncio.Task[None], int] = {}
        self.active = 0  # children started whose wrapper has not returned
        self.idle: asyncio.Future[None] | None = None
        # The started children with a deadline, in start order, and their deadlines: two
        # queues, not one of (end, task) pairs, since a pair per child is one more object
        # for the garbage collector to walk while thousands are alive (a batch shares
        # its one `end`).
        self.due: deque[asyncio.Task[None]] = deque()
        self.ends: deque[float] = deque()
        self.late = _Late()
        self.timer: asyncio.TimerHandle | None = None
        self.shared: Child | None = None  # the Child the children started last share
        with _deadline.watching(self.late):  # children classify their own timeout as a deadline
            self.context = contextvars.copy_context()
        # What finished() runs in. Given none, add_done_callback() copies the current
        # context for every child: one more object per child for the collector to walk
        # while thousands are alive (with 10,000 alive at once, one full collection more
        # than gather's: bench_fanout). The loop runs callbacks one at a time, never
        # nested, so they can all enter this one.
        self.finishing = contextvars.copy_context()

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
            raised = run.cancelled(cancelled)
            if raised is cancelled:
                raise
            raise raised from None  # the failures, and the caller's cancellation last
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
        # The Child that detached() reads is set in the context every child's own is
        # copied from, not in each child: a set allocates, and with thousands alive the
        # garbage collector walks all of that. It is shared by the children started
        # within _SHARED s of each other (at the default limit each finishing child
        # starts one: a set per child cost about 8% of a fan-out of trivial children),
        # so its bound is up to _SHARED s past a child's own deadline; the child's own
        # timer still cuts the child, and a detached() in it, at its own.
        shared = self.shared
        if shared is None or (end is not None and end > (shared.deadline or 0.0)):
            bound = None if end is None else end + _SHARED
            self.shared = shared = Child(bound, self.late.expired)
            self.context.run(CHILD.set, shared)
        context, create, done = self.context, self.loop.create_task, self.finished
        finishing = self.finishing
        while self.active < run.limit and (i := run.take()) is not None:
            task = create(self.child(i), context=context.copy())
            self.active += 1
            self.tasks[task] = i
            task.add_done_callback(done, context=finishing)
            if end is not None:
                self.due.append(task)
                self.ends.append(end)
                if self.timer is None:
                    self.arm()

    def finished(self, task: asyncio.Task[None]) -> None:
        i = self.tasks.pop(task)
        self.forget_done()  # keep no finished task alive
        if task.cancelled():  # cancelled before its first step: it never ran
            self.run.unstarted.add(i)
            self.active -= 1
            self.start_more()
        if not self.tasks and self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def forget_done(self) -> None:
        due, ends = self.due, self.ends
        while due and due[0].done():
            due.popleft()
            ends.popleft()

    def arm(self) -> None:
        self.forget_done()
        when = self.ends[0] if self.ends else None
        self.timer = None if when is None else self.loop.call_at(when, self.fire)

    def fire(self) -> None:
        now = self.loop.time()
        due, ends = self.due, self.ends
        while ends and ends[0] <= now:
            ends.popleft()
            task = due.popleft()
            if not task.done():
                self.late.tasks.add(task)
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
        if self.late.expired():  # reported as asyncio.timeout() does
            error: BaseException = cut(TimeoutError(f"fanout child {i} exceeded {run.timeout}s"))
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


async def detached(fn: Callable[[], Awaitable[Any]], child: Child) -> Any:
    """``errclass.detached`` on asyncio: *fn* in a task of its own that the caller's
    cancellation does not reach; the child's own timeout still does."""

    async def bounded() -> Any:
        async with asyncio.timeout_at(child.deadline):
            return await fn()

    inner = asyncio.get_running_loop().create_task(bounded())
    caller_cancelled = False
    while not inner.done():
        try:
            if caller_cancelled:  # the fetch runs on, bounded; every later cancel too
                with _shielded():
                    await asyncio.wait([inner])
            else:
                await asyncio.shield(inner)
        except asyncio.CancelledError:
            if child.expired():  # the child's own timeout: that one does cut it
                inner.cancel()
                await asyncio.wait([inner])
                raise
            caller_cancelled = True
    return inner.result()
