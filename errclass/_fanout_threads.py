"""The fan-out over threads, on daemon worker threads that are kept and reused.

No thread is started per child: a worker that ended one child is idle again
before the waiter hears of it, so the next child goes to the same worker, and a
thread-local client (``requests.Session``, a database connection) is made once
per worker, not once per child. A child past its timeout is abandoned with its
worker; the next child goes to another one.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ._fanout_run import Run

_MAX_IDLE = 64  # idle workers kept for the next call; more exit

# A job runs on a worker; what it returns runs once the worker counts as idle.
Job = Callable[[], Callable[[], None]]


class _Pool:
    """Daemon workers shared by every ``fanout_sync`` call in the process."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.made = 0

    def submit(self, job: Job) -> None:
        with self.lock:
            spawn = self.idle == 0
            if spawn:
                self.made += 1
                name = f"errclass-fanout-{self.made}"
            else:
                self.idle -= 1  # that worker is now reserved for this job
        if spawn:  # may raise RuntimeError("can't start new thread"): the caller handles it
            threading.Thread(target=self.work, args=(job,), name=name, daemon=True).start()
        else:
            self.jobs.put(job)

    def work(self, job: Job) -> None:
        while True:
            then = job()
            with self.lock:
                keep = self.idle < _MAX_IDLE
                if keep:
                    self.idle += 1
            then()  # e.g. tell the waiter, who hands the next child to an idle worker
            if not keep:
                return
            job = self.jobs.get()


_pool = _Pool()


class ThreadFanout:
    """Under one lock, whoever settles a child first (its runner, or the waiter
    when its timeout passed) records it, so it is recorded exactly once."""

    def __init__(self, run: Run[Any]) -> None:
        self.run = run
        self.cond = threading.Condition()
        self.running: dict[int, tuple[float, float, Any]] = {}  # i -> (deadline, t0, ctx)
        self.bound = math.inf if run.timeout is None else run.timeout
        self.context = contextvars.copy_context()

    def wait(self) -> list[Any]:
        try:
            self.drain()
        except BaseException:
            with self.cond:
                self.run.stop = True
            self.drain()  # a second interrupt leaves the rest running
            raise
        return self.run.outcome()

    def drain(self) -> None:
        with self.cond:
            while True:
                now = time.monotonic()
                for i in [i for i, (end, _, _) in self.running.items() if end <= now]:
                    self.timed_out(i)
                self.start_more()  # before looking whether anything still runs
                if not self.running:
                    return
                first = min(end for end, _, _ in self.running.values())
                self.cond.wait(None if math.isinf(first) else first - now)

    def start_more(self) -> None:
        run = self.run
        tracker = run.tracker
        while len(self.running) < run.limit and (i := run.take()) is not None:
            # OpenTelemetry's current span is the caller's: capture it in its context.
            t0, ctx = self.context.run(tracker.start) if tracker.traced else tracker.start()
            self.running[i] = (time.monotonic() + self.bound, t0, ctx)
            try:
                _pool.submit(partial(self.child, i))
            except RuntimeError:  # "can't start new thread": it never ran
                del self.running[i]
                run.unstarted.add(i)
                raise

    def child(self, i: int) -> Callable[[], None]:
        error: BaseException | None = None
        result: Any = None
        try:
            result = self.context.copy().run(self.run.children[i])
            if inspect.isawaitable(result):
                _close(result)
                raise TypeError(
                    f"fanout_sync child {i} returned {type(result).__name__}: it is async; "
                    "use errclass.fanout (and await it) for async callables"
                )
        except BaseException as e:
            error = e
        return partial(self.settled, i, result, error)

    def settled(self, i: int, result: Any, error: BaseException | None) -> None:
        with self.cond:
            self.settle(i, result, error)

    def settle(self, i: int, result: Any, error: BaseException | None) -> None:
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


def _close(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if inspect.iscoroutine(awaitable) and close is not None:
        close()
