"""track() and stream() change nothing about the program they observe, and record exactly once."""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import threading
import time
import traceback
from collections.abc import AsyncGenerator, Generator

import anyio
import pytest
import trio

import errclass
from errclass import Event
from tests.support import async_wait_until


def reasons(events: list[Event]) -> list[str]:
    return [e.outcome.reason.value for e in events]


def quiet(sink: list[Event]) -> errclass.track:
    return errclass.track(sink.append, logger=None)


# Guarantee 1: same values, same exception object, same traceback frames.


def test_return_value_and_same_exception_object(sink: list[Event]) -> None:
    err = KeyError("boom")

    @quiet(sink)
    def ok(x: int) -> int:
        return x + 1

    @quiet(sink)
    def bad() -> None:
        raise err

    assert ok(1) == 2
    with pytest.raises(KeyError) as info:
        bad()
    assert info.value is err
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "bad"  # the raising frame is still the user's
    assert reasons(sink) == ["ok", "write_failed"]
    assert sink[1].exception is err


def test_generator_return_value_passes_through(sink: list[Event]) -> None:
    @quiet(sink)
    def gen() -> Generator[int, None, str]:
        yield 1
        return "done"

    g = gen()
    assert next(g) == 1
    with pytest.raises(StopIteration) as stop:
        next(g)
    assert stop.value.value == "done"
    assert reasons(sink) == ["ok"]


async def test_coroutine_value_and_exception(sink: list[Event]) -> None:
    err = BrokenPipeError()

    @quiet(sink)
    async def ok() -> str:
        await asyncio.sleep(0)
        return "v"

    @quiet(sink)
    async def bad() -> None:
        await asyncio.sleep(0)
        raise err

    assert await ok() == "v"
    with pytest.raises(BrokenPipeError) as info:
        await bad()
    assert info.value is err
    assert reasons(sink) == ["ok", "client_gone"]


# Guarantee 2: cancellation semantics unchanged.


async def test_asyncio_timeout_still_raises_timeout_error(sink: list[Event]) -> None:
    @quiet(sink)
    async def slow() -> None:
        await asyncio.sleep(5)

    task = asyncio.current_task()
    assert task is not None
    before = task.cancelling()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await slow()
    assert task.cancelling() == before  # nobody uncancelled or left a cancel pending
    assert reasons(sink) == ["client_gone"]  # asyncio.timeout is invisible; deadline() is not


async def test_deadline_classifies_and_caller_sees_timeout_error(sink: list[Event]) -> None:
    @quiet(sink)
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        async with errclass.deadline(0.01):
            await slow()
    assert reasons(sink) == ["deadline_exceeded"]

    async def cancelled_from_outside() -> None:
        async with errclass.deadline(5):
            await slow()

    task = asyncio.ensure_future(cancelled_from_outside())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reasons(sink) == ["deadline_exceeded", "client_gone"]


async def test_async_generator_under_deadline(sink: list[Event]) -> None:
    @quiet(sink)
    async def ticks() -> AsyncGenerator[int, None]:
        for i in range(100):
            await asyncio.sleep(0.01)
            yield i

    got = []
    with pytest.raises(TimeoutError):
        async with errclass.deadline(0.05):
            async for i in ticks():
                got.append(i)
    assert got
    assert reasons(sink) == ["deadline_exceeded"]


async def test_task_group_behaves_as_without(sink: list[Event]) -> None:
    async def run(wrapped: bool) -> tuple[type[BaseException], list[str]]:
        order: list[str] = []

        async def sibling() -> None:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                order.append("sibling cancelled")
                raise

        async def failing() -> None:
            await asyncio.sleep(0.01)
            raise ValueError("x")

        a, b = (quiet(sink)(sibling), quiet(sink)(failing)) if wrapped else (sibling, failing)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(a())
                tg.create_task(b())
        except BaseException as e:
            return type(e), order
        raise AssertionError("TaskGroup did not raise")

    assert await run(False) == await run(True)
    assert sorted(reasons(sink)) == ["client_gone", "write_failed"]


def test_anyio_and_trio_cancellation_unchanged(sink: list[Event]) -> None:
    @quiet(sink)
    async def slow() -> None:
        await anyio.sleep(5)

    async def main() -> bool:
        with anyio.move_on_after(0.01) as scope:
            await slow()
        return scope.cancelled_caught

    assert anyio.run(main, backend="trio") is True
    assert anyio.run(main, backend="asyncio") is True

    async def trio_main() -> None:
        with trio.fail_after(0.01):
            await slow()

    with pytest.raises(trio.TooSlowError):
        trio.run(trio_main)
    assert reasons(sink) == ["client_gone"] * 3


# Guarantee 3: the generator protocol reaches the inner generator.


def test_send_throw_close_reach_inner(sink: list[Event]) -> None:
    seen: list[object] = []

    @quiet(sink)
    def echo() -> Generator[int, object, None]:
        try:
            while True:
                try:
                    seen.append((yield len(seen)))
                except ValueError as e:
                    seen.append(e)
        finally:
            seen.append("inner closed")

    g = echo()
    next(g)
    g.send("a")
    err = ValueError("thrown")
    g.throw(err)
    assert seen == ["a", err]
    assert sink == []
    g.close()
    assert seen[-1] == "inner closed"
    assert reasons(sink) == ["client_gone"]  # recorded at once, not at GC
    assert sink[0].outcome.rule == "generator_exit"


async def test_asend_athrow_aclose_reach_inner(sink: list[Event]) -> None:
    seen: list[object] = []

    @quiet(sink)
    async def echo() -> AsyncGenerator[int, object]:
        try:
            while True:
                try:
                    seen.append((yield len(seen)))
                except ValueError as e:
                    seen.append(e)
        finally:
            seen.append("inner closed")

    g = echo()
    await g.__anext__()
    await g.asend("a")
    err = ValueError("thrown")
    await g.athrow(err)
    assert seen == ["a", err]
    await g.aclose()
    assert seen[-1] == "inner closed"
    assert reasons(sink) == ["client_gone"]
    await g.aclose()  # a second close records nothing more
    assert len(sink) == 1


async def test_athrow_that_inner_does_not_swallow(sink: list[Event]) -> None:
    @quiet(sink)
    async def gen() -> AsyncGenerator[int, None]:
        yield 1
        yield 2

    g = gen()
    await g.__anext__()
    err = ConnectionResetError()
    with pytest.raises(ConnectionResetError) as info:
        await g.athrow(err)
    assert info.value is err
    assert reasons(sink) == ["client_gone"]


# Guarantee 4: exactly once.


def test_exactly_once_double_close_and_gc(sink: list[Event]) -> None:
    @quiet(sink)
    def gen() -> Generator[int, None, None]:
        yield 1
        yield 2

    g = gen()
    next(g)
    g.close()
    g.close()
    del g
    gc.collect()
    assert reasons(sink) == ["client_gone"]


def test_never_started_generator_records_nothing(sink: list[Event]) -> None:
    @quiet(sink)
    def gen() -> Generator[int, None, None]:
        yield 1

    g = gen()
    g.close()
    del g
    gc.collect()
    assert sink == []


def test_gc_finalisation_of_abandoned_generator_records_once(sink: list[Event]) -> None:
    @quiet(sink)
    def gen() -> Generator[int, None, None]:
        yield 1
        yield 2

    g = gen()
    next(g)
    del g
    gc.collect()
    assert reasons(sink) == ["client_gone"]


def test_sixteen_threads_ten_thousand_calls_each() -> None:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    counter = Counter("t_outcomes", "t", ("reason",), registry=registry)

    @errclass.track(counter, logger=None)
    def work(i: int) -> int:
        if i % 10 == 0:
            raise BrokenPipeError
        return i

    def run() -> None:
        for i in range(10_000):
            try:
                work(i)
            except BrokenPipeError:
                pass

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    value = registry.get_sample_value
    assert value("t_outcomes_total", {"reason": "ok"}) == 16 * 9_000
    assert value("t_outcomes_total", {"reason": "client_gone"}) == 16 * 1_000
    assert value("t_outcomes_total", {"reason": "write_failed"}) == 0


async def test_thousand_concurrent_tasks(sink: list[Event]) -> None:
    @quiet(sink)
    async def agen(i: int) -> AsyncGenerator[int, None]:
        for j in range(3):
            await asyncio.sleep(0)
            yield j
        if i % 4 == 0:
            raise OSError(28, "No space left on device")

    async def consume(i: int) -> None:
        g = agen(i)
        try:
            async for j in g:
                if i % 4 == 1 and j == 1:
                    break
        except OSError:
            pass
        finally:
            await g.aclose()

    await asyncio.gather(*(consume(i) for i in range(1000)))
    counts = {r: reasons(sink).count(r) for r in set(reasons(sink))}
    assert counts == {"write_failed": 250, "client_gone": 250, "ok": 500}


# Guarantee 5: KeyboardInterrupt and SystemExit propagate untouched.


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_interrupts_propagate(sink: list[Event], exc_type: type[BaseException]) -> None:
    err = exc_type()

    @quiet(sink)
    def f() -> None:
        raise err

    with pytest.raises(exc_type) as info:
        f()
    assert info.value is err
    assert reasons(sink) == ["write_failed"]
    assert sink[0].outcome.rule == "interrupt"


# Guarantee 9: introspection.


def test_introspection_kept() -> None:
    t = errclass.track(logger=None)

    def plain(a: int) -> int:
        """Doc."""
        return a

    async def coro() -> None:
        pass

    def gen() -> Generator[int, None, None]:
        yield 1

    async def agen() -> AsyncGenerator[int, None]:
        yield 1

    assert not inspect.iscoroutinefunction(t(plain))
    assert inspect.iscoroutinefunction(t(coro))
    assert inspect.isgeneratorfunction(t(gen))
    assert inspect.isasyncgenfunction(t(agen))
    wrapped = t(plain)
    assert wrapped.__name__ == "plain"
    assert wrapped.__doc__ == "Doc."
    assert wrapped.__wrapped__ is plain  # type: ignore[attr-defined]
    assert inspect.signature(wrapped) == inspect.signature(plain)


def test_methods_can_be_decorated(sink: list[Event]) -> None:
    class Handler:
        @quiet(sink)
        def get(self, x: int) -> int:
            return x * 2

    assert Handler().get(2) == 4
    assert sink[0].producer.endswith("Handler.get")


# Context managers.


def test_context_manager_sync_and_async(sink: list[Event]) -> None:
    with errclass.track(sink.append, logger=None, name="upload"):
        pass
    with pytest.raises(BrokenPipeError), errclass.track(sink.append, logger=None, name="upload"):
        raise BrokenPipeError

    async def main() -> None:
        async with errclass.track(sink.append, logger=None):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert reasons(sink) == ["ok", "client_gone", "ok"]
    assert sink[0].producer == "upload"
    assert sink[2].producer == f"{__name__}.test_context_manager_sync_and_async.<locals>.main"


def test_context_manager_reentry_is_a_clear_error(sink: list[Event]) -> None:
    t = errclass.track(sink.append, logger=None)
    with t, pytest.raises(RuntimeError, match="already entered"), t:
        pass


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match=r"did you write @errclass\.track"):
        errclass.track(logger=None)(42)
    with pytest.raises(ValueError, match="role"):
        errclass.track(role="server")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy"):
        errclass.track(policy="strict")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sinks"):
        errclass.track(42)
    with pytest.raises(TypeError, match="iterable"):
        errclass.stream(42)


# Each bad argument of stream(), with what it must name; track() gets the same.
BAD_ARGUMENTS: dict[str, tuple[tuple[object, ...], dict[str, object], str]] = {
    "name=5": ((), {"name": 5}, "name="),
    "name=0": ((), {"name": 0}, "name="),  # falsy: not taken for "no name"
    "name=b''": ((), {"name": b""}, "name="),
    "role": ((), {"role": "server"}, "role="),
    "policy": ((), {"policy": "strict"}, "policy="),
    "logger": ((), {"logger": 42}, "LoggingSink"),
    "sink": ((42,), {}, "sinks"),
}


@pytest.mark.parametrize("iterable", ["sync", "async"])
@pytest.mark.parametrize("bad", BAD_ARGUMENTS)
def test_stream_rejects_each_bad_argument_as_track_does(bad: str, iterable: str) -> None:
    sinks, options, names = BAD_ARGUMENTS[bad]

    async def agen() -> AsyncGenerator[bytes, None]:
        yield b"x"

    with pytest.raises((TypeError, ValueError)) as by_track:
        errclass.track(*sinks, **options)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)) as by_stream:
        errclass.stream([b"x"] if iterable == "sync" else agen(), *sinks, **options)  # type: ignore[call-overload]
    assert type(by_stream.value) is type(by_track.value)
    assert str(by_stream.value) == str(by_track.value)
    assert names in str(by_stream.value)


# stream(): owns iteration.


def test_stream_sync_early_close_records_at_once(sink: list[Event]) -> None:
    closed: list[bool] = []

    def body() -> Generator[bytes, None, None]:
        try:
            yield b"a"
            yield b"b"
        finally:
            closed.append(True)

    s = errclass.stream(body(), sink.append, logger=None, name="download")
    it = iter(s)
    assert next(it) == b"a"
    s.close()
    assert closed == [True]
    assert reasons(sink) == ["client_gone"]
    assert sink[0].producer == "download"


def test_stream_of_plain_iterable(sink: list[Event]) -> None:
    assert list(errclass.stream([1, 2, 3], sink.append, logger=None)) == [1, 2, 3]
    assert reasons(sink) == ["ok"]
    s = errclass.stream([1], sink.append, logger=None)
    list(s)
    with pytest.raises(RuntimeError, match="once"):
        iter(s)


async def test_stream_async_cancelled_mid_stream(sink: list[Event]) -> None:
    closed = asyncio.Event()

    async def body() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield b"x"
        finally:
            closed.set()

    async def consume() -> None:
        async for _ in errclass.stream(body(), sink.append, logger=None):
            pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()
    assert reasons(sink) == ["client_gone"]


async def test_sync_stream_iterated_async_in_threads(sink: list[Event]) -> None:
    """Cancelled while a next() runs in a worker thread: the step finishes, then
    the inner iterator is closed by us, before the cancellation reaches the caller."""
    closed: list[bool] = []
    steps: list[int] = []

    def body() -> Generator[bytes, None, None]:
        try:
            while True:
                time.sleep(0.01)  # a blocking read, as a sync body does
                steps.append(1)
                yield b"x"
        finally:
            closed.append(True)

    async def consume() -> None:
        async for _ in errclass.stream(body(), sink.append, logger=None):
            pass

    task = asyncio.ensure_future(consume())
    await async_wait_until(lambda: len(steps) >= 2, what="the body's thread is mid-stream")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]  # closed promptly, not by the garbage collector
    assert reasons(sink) == ["client_gone"]


async def test_stream_closed_by_consumer_records_at_once(sink: list[Event]) -> None:
    closed: list[bool] = []

    def body() -> Generator[bytes, None, None]:
        try:
            yield from (b"a", b"b", b"c")
        finally:
            closed.append(True)

    agen = aiter(errclass.stream(body(), sink.append, logger=None))
    assert await anext(agen) == b"a"
    await agen.aclose()  # what a framework does when the client left
    assert closed == [True]
    assert reasons(sink) == ["client_gone"]


def test_never_started_stream_records_nothing(sink: list[Event]) -> None:
    s = errclass.stream(iter([1, 2]), sink.append, logger=None)
    s.close()
    assert sink == []


@pytest.mark.skipif(sys.platform != "linux", reason="/dev/full is Linux")
def test_write_to_dev_full_is_write_failed(sink: list[Event]) -> None:
    @quiet(sink)
    def tee() -> Generator[bytes, None, None]:
        with open("/dev/full", "wb", buffering=0) as f:
            for chunk in (b"a", b"b"):
                f.write(chunk)
                yield chunk

    with pytest.raises(OSError, match="No space"):
        list(tee())
    assert reasons(sink) == ["write_failed"]
    assert sink[0].outcome.error_type == "OSError"


async def test_deadline_in_generator_closed_by_another_task(sink: list[Event]) -> None:
    """A Starlette body holding a deadline is closed by another task when the client leaves."""

    @quiet(sink)
    async def body() -> AsyncGenerator[int, None]:
        async with errclass.deadline(5):
            yield 1
            yield 2

    g = body()
    assert await g.__anext__() == 1
    await asyncio.create_task(g.aclose())
    assert reasons(sink) == ["client_gone"]


def test_sync_stream_async_iteration_under_trio_is_a_clear_error(sink: list[Event]) -> None:
    async def main() -> None:
        async for _ in errclass.stream(iter([1]), sink.append, logger=None):
            pass

    with pytest.raises(RuntimeError, match="needs asyncio"):
        trio.run(main)
