"""Property test of fanout and fanout_sync (issue 12): random children, limits,
modes and a caller cancel at a random point, on asyncio, trio and threads.

Every run checks the invariants:

* every child ran exactly once or is listed in ``not_started`` (never twice);
* results come back in input order, and no placeholder is ever visible;
* failures come in input order, with their indices, as the very objects raised;
* a cancelled caller sees its cancellation;
* exactly one outcome is recorded per started child.
"""

from __future__ import annotations

import _thread
import asyncio
import gc
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errclass import Event
from errclass._fanout import FanoutError, fanout, fanout_sync

TIMEOUT = 0.05  # each child's own bound; a "hang" child sleeps past it
EPS = 1e-3  # clock rounding
RETURNING = ("return", "never_await", "await_many")
KINDS = (*RETURNING, "raise", "hang")


@dataclass
class Scenario:
    kinds: list[str]
    as_coroutine: list[bool]
    limit: int
    after_failure: str
    detached: bool
    fail_fast: bool
    cancel_at: float | None


@st.composite
def scenarios(draw: st.DrawFn, cancel: bool = True) -> Scenario:
    n = draw(st.integers(0, 6))
    return Scenario(
        kinds=draw(st.lists(st.sampled_from(KINDS), min_size=n, max_size=n)),
        as_coroutine=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        limit=draw(st.integers(1, n + 2)),
        after_failure=draw(st.sampled_from(["skip", "start"])),
        detached=draw(st.booleans()),
        fail_fast=draw(st.booleans()),
        cancel_at=draw(st.none() | st.floats(0, 0.08)) if cancel else None,
    )


class Record:
    """What the children did, as the test saw it."""

    def __init__(self, n: int) -> None:
        self.ran = [0] * n
        self.errors: dict[int, BaseException] = {i: KeyError(f"child {i}") for i in range(n)}
        self.failed_at: dict[int, int] = {}  # order in which "raise" children raised
        self.ended: dict[int, float] = {}
        self.t0 = 0.0  # when the call began, on the clock of `ended`
        self.order = itertools.count()
        self.events: list[Event] = []


def _is_cancel(e: BaseException) -> bool:
    import trio

    return isinstance(e, asyncio.CancelledError | trio.Cancelled | KeyboardInterrupt)


def timed_out(rec: Record, i: int) -> bool:
    """Whether child *i* may be reported cut by its timeout: it ended (or was still
    running) no earlier than TIMEOUT after the call began. A "hang" child always is;
    any other only when a loaded machine held it that long."""
    return rec.ended.get(i, math.inf) - rec.t0 >= TIMEOUT - EPS


def check_group(sc: Scenario, rec: Record, group: FanoutError, cancelled: bool) -> None:
    n = len(sc.kinds)
    indices = list(group.indices)
    assert indices == sorted(set(indices)), "failures in input order, each once"
    members = list(group.exceptions)
    assert len(members) - len(indices) in (0, 1)
    for extra in members[len(indices) :]:
        assert _is_cancel(extra) and cancelled, "only the caller's cancellation rides along"
    for k, i in enumerate(indices):
        kind, exc = sc.kinds[i], members[k]
        if not (isinstance(exc, TimeoutError) and timed_out(rec, i)):
            assert kind == "raise", f"child {i} ({kind}) reported failed: {exc!r}"
            assert exc is rec.errors[i], "the very object the child raised"
        assert rec.ran[i] == 1
    for i, value in group.results.items():
        assert value == ("r", i), f"result {i} is {value!r}: a placeholder or another's"
        assert rec.ran[i] == 1
    skipped = set(group.not_started)
    assert not skipped & (set(indices) | set(group.results))
    for i in range(n):
        assert rec.ran[i] <= 1
        if rec.ran[i] == 0:
            assert i in skipped, f"child {i} neither ran nor is listed in not_started"
        else:
            assert i not in skipped
    if not cancelled:  # else a running child cut by the cancel is in none of the three
        assert skipped | set(indices) | set(group.results) == set(range(n))


def check_common(sc: Scenario, rec: Record, outcome: Any, cancelled: bool) -> None:
    n = len(sc.kinds)
    assert all(r <= 1 for r in rec.ran), "a child ran twice"
    assert len(rec.events) == sum(rec.ran), "exactly one outcome per started child"
    if isinstance(outcome, list):
        assert not cancelled
        assert outcome == [("r", i) for i in range(n)]
        assert all(k in RETURNING for k in sc.kinds)
        return
    assert isinstance(outcome, BaseException), outcome
    if isinstance(outcome, FanoutError):
        check_group(sc, rec, outcome, cancelled)
    elif cancelled and _is_cancel(outcome):
        pass
    else:
        assert sc.fail_fast and not cancelled, f"unexpected {outcome!r}"
        failed = [i for i in range(n) if rec.ran[i] and sc.kinds[i] == "raise"]
        if isinstance(outcome, TimeoutError):
            assert any(rec.ran[i] and timed_out(rec, i) for i in range(n))
        else:
            assert any(outcome is rec.errors[i] for i in failed), "the very object raised"
            if "hang" not in sc.kinds:  # the first failure, as errgroup returns it
                first = min(rec.failed_at, key=rec.failed_at.__getitem__)
                assert outcome is rec.errors[first]


# asyncio and trio


def async_children(sc: Scenario, rec: Record, now: Callable[[], float]) -> list[Any]:
    import anyio

    def make(i: int) -> Callable[[], Any]:
        async def child() -> tuple[str, int]:
            rec.ran[i] += 1
            try:
                kind = sc.kinds[i]
                if kind == "hang":
                    await anyio.sleep(10)
                elif kind == "await_many":
                    for _ in range(5):
                        await anyio.sleep(0)
                elif kind != "never_await":
                    await anyio.sleep(0.002 * (i % 3))
                if kind == "raise":
                    rec.failed_at[i] = next(rec.order)
                    raise rec.errors[i]
                return ("r", i)
            finally:
                rec.ended[i] = now()

        return child

    return [make(i)() if coro else make(i) for i, coro in enumerate(sc.as_coroutine)]


def options(sc: Scenario, rec: Record) -> dict[str, Any]:
    return {
        "timeout": TIMEOUT,
        "limit": sc.limit,
        "after_failure": sc.after_failure,
        "fail_fast": sc.fail_fast,
        "name": "prop",
        "sinks": [rec.events.append],
        "logger": None,
    }


def run_asyncio(sc: Scenario) -> None:
    rec = Record(len(sc.kinds))

    async def main() -> tuple[Any, bool]:
        loop = asyncio.get_running_loop()
        children = async_children(sc, rec, loop.time)
        rec.t0 = loop.time()
        task = asyncio.create_task(fanout(children, detached=sc.detached, **options(sc, rec)))
        cancelled = False
        if sc.cancel_at is not None:
            await asyncio.wait({task}, timeout=sc.cancel_at)
            cancelled = task.cancel()  # False once the call has returned
        try:
            return await task, cancelled
        except BaseException as e:
            return e, cancelled

    outcome, cancelled = asyncio.run(main())
    if cancelled:  # the caller must see its cancellation, alone or beside earlier failures
        assert _is_cancel(outcome) or (
            isinstance(outcome, FanoutError) and any(_is_cancel(e) for e in outcome.exceptions)
        ), f"cancellation lost: {outcome!r}"
    check_common(sc, rec, outcome, cancelled)


def run_trio(sc: Scenario) -> None:
    import trio

    rec = Record(len(sc.kinds))

    async def main() -> tuple[Any, Any, bool]:
        children = async_children(sc, rec, trio.current_time)
        rec.t0 = trio.current_time()
        after = False
        delay = math.inf if sc.cancel_at is None else sc.cancel_at
        outcome: Any = None
        try:
            with trio.move_on_after(delay) as scope:
                outcome = await fanout(children, detached=sc.detached, **options(sc, rec))
                after = True
        except BaseException as e:
            outcome = e
        return outcome, scope, after

    outcome, scope, after = trio.run(main)
    late = [i for i, t in rec.ended.items() if t >= scope.deadline]
    if late:  # the call was still running when the caller's deadline passed
        assert scope.cancelled_caught and not after, f"cancellation lost ({late} ended late)"
    cancelled = bool(scope.cancelled_caught)
    if cancelled and outcome is None:
        check_cancelled_only(sc, rec)
        return
    check_common(sc, rec, outcome, cancelled)


def check_cancelled_only(sc: Scenario, rec: Record) -> None:
    assert all(r <= 1 for r in rec.ran)
    assert len(rec.events) == sum(rec.ran)


# threads


def thread_children(sc: Scenario, rec: Record, done: list[threading.Event]) -> list[Any]:
    def make(i: int) -> Callable[[], tuple[str, int]]:
        def child() -> tuple[str, int]:
            rec.ran[i] += 1
            try:
                kind = sc.kinds[i]
                if kind == "hang":
                    time.sleep(TIMEOUT * 2.5)  # past its timeout: abandoned, ends late
                elif kind == "await_many":
                    for _ in range(5):
                        time.sleep(0)
                elif kind != "never_await":
                    time.sleep(0.002 * (i % 3))
                if kind == "raise":
                    rec.failed_at[i] = next(rec.order)
                    raise rec.errors[i]
                return ("r", i)
            finally:
                rec.ended[i] = time.monotonic()
                done[i].set()

        return child

    return [make(i) for i in range(len(sc.kinds))]


def run_threads(sc: Scenario) -> None:
    rec = Record(len(sc.kinds))
    done = [threading.Event() for _ in sc.kinds]
    children = thread_children(sc, rec, done)
    opts = options(sc, rec)
    lock, state = threading.Lock(), {"inside": True, "fired": False}

    def interrupt() -> None:
        with lock:
            if state["inside"]:
                state["fired"] = True
                _thread.interrupt_main()  # Ctrl-C in the waiting thread

    timer = None
    if sc.cancel_at is not None:
        timer = threading.Timer(sc.cancel_at, interrupt)
    outcome: Any = None
    # The interrupt lands at the main thread's next bytecode: with the collector on, that
    # may be in a gc callback (hypothesis times collections), where it is only reported
    # as unraisable and fails the test for nothing errclass did (seen once in 31 seeded runs).
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            if timer is not None:  # in here: at cancel_at=0 it may fire before start() returns
                timer.start()
            rec.t0 = time.monotonic()
            outcome = fanout_sync(children, **opts)
        except BaseException as e:  # KeyboardInterrupt too: the caller's "cancel"
            outcome = e
        finally:
            with lock:
                state["inside"] = False
            if timer is not None:
                timer.cancel()
        if state["fired"] and not isinstance(outcome, KeyboardInterrupt):
            for _ in range(1000):  # the interrupt is still on its way: let it land here
                time.sleep(0.001)
    except KeyboardInterrupt:
        pass
    finally:
        if collecting:
            gc.enable()
    for i, ran in enumerate(rec.ran):
        if ran:
            assert done[i].wait(5)  # abandoned children end, and are not recorded again
    cancelled = isinstance(outcome, KeyboardInterrupt)
    if cancelled:
        check_cancelled_only(sc, rec)
        return
    check_common(sc, rec, outcome, cancelled)


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)


@SETTINGS
@given(scenarios())
def test_property_asyncio(sc: Scenario) -> None:
    run_asyncio(sc)


@SETTINGS
@given(scenarios())
def test_property_trio(sc: Scenario) -> None:
    run_trio(sc)


@settings(SETTINGS, max_examples=40)
@given(scenarios())
def test_property_threads(sc: Scenario) -> None:
    run_threads(sc)


@pytest.mark.parametrize("limit", [1, 2])
def test_threads_every_limit_example(limit: int) -> None:
    """The example that failed 20 of 20 times (issue 12, item 1), always run."""
    sc = Scenario(["return"] * 8, [False] * 8, limit, "start", False, False, None)
    run_threads(sc)
