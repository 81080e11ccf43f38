"""errclass fanout: siblings survive a failure, bounds hold, nothing is lost or left running."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import signal
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest

import errclass
from errclass import Event
from errclass._fanout import FanoutError, fanout, fanout_sync
from errclass.testing import counter_value
from tests.support import async_wait_until, cancelled_repeatedly, holds_for

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("fanout_test_var", default="unset")


def quiet(sink: list[Event]) -> dict[str, Any]:
    """Options recording into *sink* only."""
    return {"sinks": [sink.append], "logger": None, "name": "t"}


def reasons(sink: list[Event]) -> list[str]:
    return sorted(e.reason.value for e in sink)


async def value(x: Any, delay: float = 0.0) -> Any:
    await asyncio.sleep(delay)
    return x


async def fail(exc: BaseException, delay: float = 0.0) -> None:
    await asyncio.sleep(delay)
    raise exc


def others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


# Results and failures


async def test_results_in_input_order(sink: list[Event]) -> None:
    delays = [0.05, 0.0, 0.03, 0.01, 0.04, 0.02] * 3
    children = [partial(value, i, d) for i, d in enumerate(delays)]
    assert await fanout(children, timeout=5, limit=4, **quiet(sink)) == list(range(len(delays)))
    assert reasons(sink) == ["ok"] * len(delays)
    assert not others()


async def test_coroutines_and_callables_both_accepted(sink: list[Event]) -> None:
    assert await fanout([value(1), partial(value, 2)], timeout=5, **quiet(sink)) == [1, 2]
    assert await fanout([], timeout=5, **quiet(sink)) == []


async def test_failure_does_not_cancel_in_flight_siblings(sink: list[Event]) -> None:
    finished = []

    async def slow(i: int) -> int:
        await asyncio.sleep(0.2)
        finished.append(i)
        return i

    err = ValueError("b")
    children = [partial(slow, 0), partial(fail, err), partial(slow, 2)]
    with pytest.raises(FanoutError) as info:
        await fanout(children, timeout=5, **quiet(sink))
    assert sorted(finished) == [0, 2]  # a TaskGroup would have cancelled both
    assert info.value.exceptions == (err,)  # the very object
    assert info.value.indices == (1,)
    assert info.value.results == {0: 0, 2: 2}
    assert info.value.not_started == ()
    assert isinstance(info.value, ExceptionGroup)
    assert reasons(sink) == ["ok", "ok", "write_failed"]
    assert not others()


async def test_group_holds_every_failure_in_input_order(sink: list[Event]) -> None:
    errs = {i: KeyError(i) for i in (1, 3, 4, 6)}
    delays = {1: 0.06, 3: 0.0, 4: 0.04, 6: 0.02}  # they fail in another order
    children: list[Callable[[], Awaitable[Any]]] = [
        partial(fail, errs[i], delays[i]) if i in errs else partial(value, i, 0.01)
        for i in range(8)
    ]
    with pytest.raises(FanoutError) as info:
        await fanout(children, timeout=5, limit=3, after_failure="start", **quiet(sink))
    assert list(info.value.exceptions) == [errs[i] for i in (1, 3, 4, 6)]
    assert info.value.indices == (1, 3, 4, 6)
    assert info.value.results == {0: 0, 2: 2, 5: 5, 7: 7}
    assert str(info.value).startswith("4 of 8 fanout children failed")
    assert len(sink) == 8


async def test_except_star_matches_the_failures(sink: list[Event]) -> None:
    caught = []
    try:
        await fanout([partial(fail, KeyError(1)), partial(value, 2)], timeout=5, **quiet(sink))
    except* KeyError as group:
        caught.append(group)
    assert len(caught) == 1


async def test_skip_after_failure_reports_not_started(sink: list[Event]) -> None:
    started = []

    async def child(i: int) -> int:
        started.append(i)
        if i == 1:
            raise RuntimeError("first failure")
        await asyncio.sleep(0.05)
        return i

    children = [partial(child, i) for i in range(2)] + [child(i) for i in range(2, 6)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FanoutError) as info:
            await fanout(children, timeout=5, limit=2, **quiet(sink))
        del children
        gc.collect()
    assert sorted(started) == [0, 1]  # 0 was in flight and finished
    assert info.value.results == {0: 0}
    assert info.value.not_started == (2, 3, 4, 5)
    assert "4 not started" in str(info.value)
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert reasons(sink) == ["ok", "write_failed"]  # nothing recorded for the skipped


async def test_start_after_failure_runs_everything(sink: list[Event]) -> None:
    children = [partial(fail, RuntimeError("x"))] + [partial(value, i) for i in range(1, 5)]
    with pytest.raises(FanoutError) as info:
        await fanout(children, timeout=5, limit=1, after_failure="start", **quiet(sink))
    assert info.value.results == {1: 1, 2: 2, 3: 3, 4: 4}
    assert info.value.not_started == ()


async def test_stray_cancelled_child_is_a_base_group(sink: list[Event]) -> None:
    async def cancelled_elsewhere() -> None:
        other = asyncio.get_running_loop().create_future()
        other.cancel()
        await other

    with pytest.raises(FanoutError) as info:
        await fanout([cancelled_elsewhere, partial(value, 1)], timeout=5, **quiet(sink))
    assert not isinstance(info.value, ExceptionGroup)
    assert isinstance(info.value.exceptions[0], asyncio.CancelledError)
    assert info.value.results == {1: 1}


# Bounds: concurrency and per-child timeout


@pytest.mark.parametrize("limit", [1, 3, 8])
async def test_concurrency_limit_never_exceeded(sink: list[Event], limit: int) -> None:
    running = peak = 0

    async def child(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (i % 4))
        running -= 1
        return i

    out = await fanout(
        [partial(child, i) for i in range(40)], timeout=5, limit=limit, **quiet(sink)
    )
    assert out == list(range(40))
    assert peak == limit


async def test_default_limit_is_8(sink: list[Event]) -> None:
    running = peak = 0

    async def child() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    await fanout([child] * 30, timeout=5, **quiet(sink))
    assert peak == 8


async def test_per_child_timeout_bounds_only_that_child(sink: list[Event]) -> None:
    inner: list[Event] = []

    async def stuck() -> None:
        async with errclass.track(inner.append, role="consumer", name="inner", logger=None):
            await asyncio.sleep(30)

    t0 = time.monotonic()
    with pytest.raises(FanoutError) as info:
        await fanout(
            [stuck, partial(value, 1, 0.15), partial(value, 2, 0.15)],
            timeout=0.2,
            limit=2,
            after_failure="start",
            **quiet(sink),
        )
    assert time.monotonic() - t0 < 5
    [err] = info.value.exceptions
    assert isinstance(err, TimeoutError)
    assert isinstance(err.__cause__, asyncio.CancelledError)
    assert info.value.results == {1: 1, 2: 2}  # 2 was running when 0 timed out
    assert reasons(sink) == ["deadline_exceeded", "ok", "ok"]
    assert [e.reason.value for e in inner] == ["deadline_exceeded"]  # nested producers see it


async def test_timeout_counts_from_each_childs_start(sink: list[Event]) -> None:
    # Serial children each under the bound: the total exceeds it and nothing times out.
    out = await fanout(
        [partial(value, i, 0.1) for i in range(4)], timeout=0.3, limit=1, **quiet(sink)
    )
    assert out == [0, 1, 2, 3]


async def test_detached_bound_is_each_childs_own_deadline(sink: list[Event]) -> None:
    # Serial children: each detached call is bounded by its own child's deadline (set
    # once per batch in the context the children are copied from), not an earlier
    # child's, which has passed by then; and none leaks into the caller's context.
    async def child(i: int) -> int:
        await asyncio.sleep(0.1)
        return int(await errclass.detached(partial(value, i, 0.05)))

    out = await fanout([partial(child, i) for i in range(4)], timeout=0.3, limit=1, **quiet(sink))
    assert out == [0, 1, 2, 3]
    assert reasons(sink) == ["ok"] * 4
    with pytest.raises(RuntimeError, match=r"inside an errclass\.fanout child"):
        await errclass.detached(partial(value, 0))


async def test_children_started_together_share_a_bound_never_before_their_own(
    sink: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast path: children started within _SHARED s of each other share one Child
    # (one ContextVar set, not one per child), whose detached() bound is at or just
    # after each one's own deadline (the end its timer is armed with), never before.
    from errclass import _fanout_asyncio
    from errclass._fanout_run import CHILD

    tasks: list[asyncio.Task[Any]] = []  # every child with a timer, in start order
    deadlines: list[float] = []  # and the deadline its timer has

    class Armed(deque[Any]):
        def __init__(self, log: list[Any]) -> None:
            super().__init__()
            self.log = log

        def append(self, item: Any) -> None:
            self.log.append(item)
            super().append(item)

    init = _fanout_asyncio.AsyncioFanout.__init__

    def spying(self: Any, *args: Any) -> None:
        init(self, *args)
        self.due, self.ends = Armed(tasks), Armed(deadlines)

    monkeypatch.setattr(_fanout_asyncio.AsyncioFanout, "__init__", spying)
    seen: dict[asyncio.Task[Any], Any] = {}  # the Child each child runs under

    async def child(i: int) -> int:
        task = asyncio.current_task()
        assert task is not None
        seen[task] = CHILD.get()
        if i % 50 == 49:
            await asyncio.sleep(2 * _fanout_asyncio._SHARED)  # the next start is later
        return i

    n = 300
    children = [partial(child, i) for i in range(n)]
    out = await fanout(children, timeout=5, limit=1, **quiet(sink))  # a pause stops starts
    assert out == list(range(n))
    ends = dict(zip(tasks, deadlines, strict=True))
    assert seen.keys() == ends.keys() and len(seen) == n
    for task, end in ends.items():
        assert end <= seen[task].deadline <= end + _fanout_asyncio._SHARED
    shared = {id(c) for c in seen.values()}
    assert n // 50 <= len(shared) < n // 2  # renewed after each pause, shared between


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, TypeError, "missing 1 required keyword-only argument: 'timeout'"),
        ({"timeout": None}, TypeError, "positive number of seconds per child"),
        ({"timeout": 0}, ValueError, "positive number"),
        ({"timeout": -1.5}, ValueError, "positive number"),
        ({"timeout": float("nan")}, ValueError, "positive number"),
        ({"timeout": "5"}, TypeError, "positive number"),
        ({"timeout": True}, TypeError, "positive number"),
        ({"timeout": 1, "limit": 0}, ValueError, "limit= must be a positive integer"),
        ({"timeout": 1, "limit": 2.0}, ValueError, "limit= must be a positive integer"),
        ({"timeout": 1, "after_failure": "cancel"}, ValueError, "'skip' or 'start'"),
        ({"timeout": 1, "detached": "yes"}, TypeError, "detached= must be True or False"),
        ({"timeout": 1, "name": 3}, TypeError, "name= must be a string"),
        ({"timeout": 1, "policy": "strict"}, TypeError, "policy= must be an errclass.Policy"),
    ],
)
async def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    coro = value(1)
    with pytest.raises(error, match=match):
        await fanout([coro], **kwargs)
    coro.close()


async def test_bad_children() -> None:
    with pytest.raises(TypeError, match="iterable of zero-argument callables"):
        await fanout(value, timeout=1)  # type: ignore[arg-type]
    task = asyncio.ensure_future(value(1))
    pending = value(2)
    with pytest.raises(TypeError, match="already running: pass the coroutine function"):
        await fanout([pending, task], timeout=1)  # type: ignore[list-item]
    assert pending.cr_frame is None  # closed, so no "never awaited" warning
    await task
    with pytest.raises(TypeError, match="must be zero-argument callables"):
        await fanout([1], timeout=1)  # type: ignore[list-item]


async def test_infinite_timeout_is_an_explicit_opt_out(sink: list[Event]) -> None:
    assert await fanout([partial(value, 1, 0.01)], timeout=float("inf"), **quiet(sink)) == [1]


# Caller cancellation


async def test_caller_cancellation_reaches_every_child(sink: list[Event]) -> None:
    started: list[int] = []
    cancelled = []

    async def child(i: int) -> None:
        started.append(i)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    caller = asyncio.create_task(
        fanout([partial(child, i) for i in range(5)], timeout=60, limit=3, **quiet(sink))
    )
    await async_wait_until(lambda: len(started) == 3, what="the first three children started")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    assert sorted(cancelled) == [0, 1, 2]  # 3 and 4 never started
    assert reasons(sink) == ["client_gone"] * 3  # a team sees its own cancellations
    assert not others()


async def test_cancellation_after_failures_raises_them_with_the_cancellation(
    sink: list[Event],
) -> None:
    err = ValueError("earlier")
    caller = asyncio.create_task(
        fanout([partial(fail, err), partial(value, 1, 30)], timeout=60, **quiet(sink))
    )
    await async_wait_until(lambda: sink, what="the failing child's outcome")
    caller.cancel()
    with pytest.raises(FanoutError) as info:
        await caller
    failure, cancel = info.value.exceptions
    assert failure is err and info.value.indices == (0,)
    assert isinstance(cancel, asyncio.CancelledError)  # the caller sees its cancellation
    assert not isinstance(info.value, ExceptionGroup)
    handled = []
    try:
        raise info.value
    except* ValueError as group:  # the failures, as on trio
        handled.append(group)
    except* asyncio.CancelledError:
        pass
    assert isinstance(handled[0], FanoutError) and handled[0].indices == (0,)


async def test_detached_lets_in_flight_children_finish(sink: list[Event]) -> None:
    started = asyncio.Event()
    finished, ran = [], []

    async def child(i: int) -> int:
        ran.append(i)
        started.set()
        await asyncio.sleep(0.2)
        finished.append(i)
        return i

    children = [partial(child, i) for i in range(4)]
    caller = asyncio.create_task(fanout(children, timeout=5, limit=2, detached=True, **quiet(sink)))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()  # re-raised, not swallowed
    assert sorted(finished) == [0, 1] == sorted(ran)  # in flight finished, the rest never started
    assert reasons(sink) == ["ok", "ok"]
    assert not others()


async def test_detached_children_still_bounded_by_their_timeout(sink: list[Event]) -> None:
    caller = asyncio.create_task(
        fanout([partial(value, 1, 30)], timeout=0.2, detached=True, **quiet(sink))
    )
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    caller.cancel()
    with pytest.raises(FanoutError) as info:
        await caller
    assert time.monotonic() - t0 < 5
    timed_out, cancel = info.value.exceptions
    assert isinstance(timed_out, TimeoutError)
    assert isinstance(cancel, asyncio.CancelledError)
    assert reasons(sink) == ["deadline_exceeded"]


async def test_detached_under_asyncio_timeout_still_times_out(sink: list[Event]) -> None:
    # asyncio.timeout relies on the task's cancel count: a swallowed or uncancelled
    # CancelledError would turn this into a normal return.
    finished = []

    async def child() -> None:
        await asyncio.sleep(0.2)
        finished.append(1)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await fanout([child, child], timeout=5, detached=True, **quiet(sink))
    assert finished == [1, 1]
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_repeated_cancellation_while_detached_still_waits(sink: list[Event]) -> None:
    done = []

    async def child() -> None:
        await asyncio.sleep(0.15)
        done.append(1)

    await cancelled_repeatedly(fanout([child], timeout=5, detached=True, **quiet(sink)))
    assert done == [1]


async def test_children_run_in_their_own_context(sink: list[Event]) -> None:
    VAR.set("caller")

    async def child(i: int) -> str:
        seen = VAR.get()
        VAR.set(f"child{i}")
        await asyncio.sleep(0)
        return seen

    assert (
        await fanout([partial(child, i) for i in range(4)], timeout=5, limit=1, **quiet(sink))
        == ["caller"] * 4
    )
    assert VAR.get() == "caller"


@pytest.mark.parametrize("timeout", [5, float("inf")])
async def test_children_freed_when_the_call_returns(sink: list[Event], timeout: float) -> None:
    # No reference cycle through the fan-out (its children's context held the fan-out
    # itself): the call's state and every child go with their last reference, not when
    # a full garbage collection finally finds them.
    children = [value(i) for i in range(50)]
    refs = [weakref.ref(c) for c in children]
    gc.collect()
    gc.disable()
    try:
        assert await fanout(children, timeout=timeout, limit=8, **quiet(sink)) == list(range(50))
        del children
        assert [r for r in refs if r() is not None] == []
    finally:
        gc.enable()


async def test_children_alive_at_once_hold_no_more_contexts_than_gathers() -> None:
    # A Context per child, not two: add_done_callback() given none copies the current
    # one for every child, one more object apiece for the collector to walk while
    # all are alive (with 10,000 alive, one full collection more than gather's).
    n = 200

    async def census(run: Callable[[list[Any]], Awaitable[Any]]) -> int:
        started, counts = 0, []
        all_in = asyncio.Event()

        async def child() -> None:
            nonlocal started
            started += 1
            if started == n:
                counts.append(sum(type(o) is contextvars.Context for o in gc.get_objects()))
                all_in.set()
            await all_in.wait()

        await run([child() for _ in range(n)])
        return counts[0]

    gathered = await census(lambda children: asyncio.gather(*children))
    fanned = await census(
        lambda children: fanout(children, timeout=5, limit=n, sinks=(), logger=None)
    )
    # gather: each task's context and its done callback's copy. The fan-out: each
    # task's own (its callbacks share one), so with its wrapper coroutine it leaves
    # the collector as many objects per child as gather does.
    assert gathered >= 2 * n
    assert n <= fanned <= n + 10, (fanned, gathered)


# Recording


async def test_default_counter_by_fanout_and_reason() -> None:
    name = "test_fanout.default_counter"
    before = counter_value(
        "errclass_fetch_outcomes_total", None, fanout=name, reason="ok", cancelled="false"
    )
    children = [partial(value, 1), partial(fail, OSError(5, "io"))]
    with pytest.raises(FanoutError):
        await fanout(children, timeout=5, name=name, logger=None)

    def count(reason: str) -> float:
        return counter_value(
            "errclass_fetch_outcomes_total", None, fanout=name, reason=reason, cancelled="false"
        )

    assert count("ok") == before + 1
    assert count("write_failed") == 1
    assert counter_value("errclass_outcomes_total", None, producer=name, reason="ok") == 0


async def test_outcomes_classified_in_consumer_role(sink: list[Event]) -> None:
    import httpx

    err = httpx.ConnectError("refused")
    with pytest.raises(FanoutError):
        await fanout([partial(fail, err)], timeout=5, **quiet(sink))
    assert sink[0].role == "consumer"
    assert sink[0].outcome == errclass.classify(err, role="consumer")


async def test_default_name_is_the_calling_function(sink: list[Event]) -> None:
    await fanout([partial(value, 1)], timeout=5, sinks=[sink.append], logger=None)
    assert sink[0].producer.endswith("test_default_name_is_the_calling_function")


async def test_failing_sink_is_contained() -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("sink down")

    assert await fanout([partial(value, 1)], timeout=5, sinks=[broken], logger=None) == [1]


# Threads


def test_threads_results_in_order_and_limit(sink: list[Event]) -> None:
    lock = threading.Lock()
    running = peak = 0

    def child(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.002 * (i % 5))
        with lock:
            running -= 1
        return i

    assert fanout_sync(
        [partial(child, i) for i in range(30)], timeout=5, limit=4, **quiet(sink)
    ) == list(range(30))
    assert peak == 4
    assert reasons(sink) == ["ok"] * 30


def test_threads_failure_does_not_stop_siblings(sink: list[Event]) -> None:
    err = KeyError("b")
    finished = []

    def slow(i: int) -> int:
        time.sleep(0.1)
        finished.append(i)
        return i

    def bad() -> None:
        raise err

    with pytest.raises(FanoutError) as info:
        fanout_sync(
            [partial(slow, 0), bad, partial(slow, 2), partial(slow, 3)],
            timeout=5,
            limit=3,
            **quiet(sink),
        )
    assert sorted(finished) == [0, 2]
    assert info.value.exceptions == (err,)
    assert info.value.not_started == (3,)
    assert info.value.results == {0: 0, 2: 2}


def test_threads_timeout_abandons_and_records_once(sink: list[Event]) -> None:
    release = threading.Event()
    late = threading.Event()

    workers: list[threading.Thread] = []

    def stuck() -> int:
        workers.append(threading.current_thread())
        release.wait(10)
        late.set()
        return 1

    t0 = time.monotonic()
    with pytest.raises(FanoutError) as info:
        fanout_sync([stuck, partial(time.sleep, 0)], timeout=0.2, **quiet(sink))
    assert time.monotonic() - t0 < 5
    assert isinstance(info.value.exceptions[0], TimeoutError)
    release.set()
    assert late.wait(5)
    # Its worker is reused, so it does not end: check that no second record comes in.
    assert holds_for(lambda: reasons(sink) == ["deadline_exceeded", "ok"], 0.3)


def test_threads_infinite_timeout(sink: list[Event]) -> None:
    assert fanout_sync([partial(time.sleep, 0.01)], timeout=float("inf"), **quiet(sink)) == [None]


def test_threads_see_the_callers_context(sink: list[Event]) -> None:
    token = VAR.set("caller")
    try:
        assert fanout_sync([VAR.get] * 3, timeout=5, **quiet(sink)) == ["caller"] * 3
    finally:
        VAR.reset(token)


def test_threads_bad_arguments() -> None:
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'timeout'"):
        fanout_sync([time.time])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="must be zero-argument callables"):
        fanout_sync([1], timeout=1)  # type: ignore[list-item]


# anyio: trio (and asyncio through anyio's path)


def run_trio(fn: Callable[[], Awaitable[Any]]) -> Any:
    import trio

    return trio.run(fn)


def test_trio_results_failures_and_siblings(sink: list[Event]) -> None:
    import trio

    finished = []
    err = ValueError("b")

    async def slow(i: int) -> int:
        await trio.sleep(0.1)
        finished.append(i)
        return i

    async def bad() -> None:
        await trio.sleep(0.01)
        raise err

    async def main() -> Any:
        assert await fanout(
            [partial(slow, i) for i in range(5)], timeout=5, limit=2, **quiet(sink)
        ) == list(range(5))
        with pytest.raises(FanoutError) as info:
            await fanout([partial(slow, 10), bad, partial(slow, 12)], timeout=5, **quiet(sink))
        return info.value

    group = run_trio(main)
    assert sorted(finished) == [0, 1, 2, 3, 4, 10, 12]
    assert group.exceptions == (err,)
    assert group.results == {0: 10, 2: 12}


def test_trio_limit_timeout_and_skip(sink: list[Event]) -> None:
    import trio

    running = peak = 0

    async def child(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(30 if i == 0 else 0.01)
        running -= 1
        return i

    async def main() -> Any:
        with pytest.raises(FanoutError) as info:
            await fanout(
                [partial(child, i) for i in range(10)], timeout=0.3, limit=3, **quiet(sink)
            )
        return info.value

    group = run_trio(main)
    assert peak == 3
    assert isinstance(group.exceptions[0], TimeoutError)
    assert group.indices == (0,)
    assert set(group.results) == set(range(1, 10))  # the others ran beside the stuck one
    assert reasons(sink).count("deadline_exceeded") == 1


def test_trio_caller_cancellation_reaches_children(sink: list[Event]) -> None:
    import trio

    cancelled = []

    async def child(i: int) -> None:
        try:
            await trio.sleep(30)
        except trio.Cancelled:
            cancelled.append(i)
            raise

    async def main() -> None:
        with trio.move_on_after(0.1) as scope:
            await fanout([partial(child, i) for i in range(4)], timeout=60, limit=2, **quiet(sink))
        assert scope.cancelled_caught

    run_trio(main)
    assert sorted(cancelled) == [0, 1]
    assert reasons(sink) == ["client_gone", "client_gone"]


def test_trio_detached_children_finish(sink: list[Event]) -> None:
    import trio

    finished = []

    async def child(i: int) -> int:
        await trio.sleep(0.2)
        finished.append(i)
        return i

    async def main() -> None:
        with trio.move_on_after(0.05) as scope:
            await fanout(
                [partial(child, i) for i in range(4)],
                timeout=5,
                limit=2,
                detached=True,
                **quiet(sink),
            )
        assert scope.cancelled_caught  # the cancellation still reached the caller

    run_trio(main)
    assert sorted(finished) == [0, 1]
    assert reasons(sink) == ["ok", "ok"]


def test_anyio_path_detected_per_library() -> None:
    import anyio
    import sniffio

    seen = []

    async def child() -> str:
        return sniffio.current_async_library()

    async def main() -> None:
        seen.extend(await fanout([child], timeout=5, sinks=(), logger=None))

    anyio.run(main, backend="trio")
    anyio.run(main, backend="asyncio")
    assert seen == ["trio", "asyncio"]


@pytest.mark.parametrize("detached", [False, True])
def test_anyio_scope_cancellation_on_asyncio(sink: list[Event], detached: bool) -> None:
    import anyio

    finished, cancelled = [], []

    async def child(i: int) -> None:
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        finished.append(i)

    async def main() -> None:
        with anyio.move_on_after(0.05) as scope:
            await fanout(
                [partial(child, i) for i in range(3)],
                timeout=5,
                limit=2,
                detached=detached,
                **quiet(sink),
            )
        assert scope.cancelled_caught

    anyio.run(main, backend="asyncio")
    assert sorted(finished if detached else cancelled) == [0, 1]
    assert (finished if not detached else cancelled) == []


def test_threads_interrupted_caller_waits_for_running_then_reraises(sink: list[Event]) -> None:
    finished, ran = [], []
    both_running = threading.Barrier(2)

    def child(i: int) -> int:
        ran.append(i)
        if i < 2:
            both_running.wait(5)
        if i == 0:  # Ctrl-C, delivered to the waiting thread
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        time.sleep(0.2)
        finished.append(i)
        return i

    with pytest.raises(KeyboardInterrupt):
        fanout_sync([partial(child, i) for i in range(4)], timeout=5, limit=2, **quiet(sink))
    assert sorted(finished) == [0, 1] == sorted(ran)  # the running ones ended; none started after
    assert reasons(sink) == ["ok", "ok"]
