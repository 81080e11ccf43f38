"""Every kind of producer records success the same way, on each path Tracker.ok takes.

``Tracker.ok`` is chosen once per tracker: a single pre-bound counter gets a
closure that only increments it, unless a capture is running or the transport
says the client already left; those go the general way. Each wrapper kind must
reach the right one.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

import errclass
from errclass import _client_state
from errclass._client_state import Transport, publish, unpublish
from errclass.testing import capture_outcomes, counter_value


def _sync() -> Callable[[], Any]:
    def producer() -> int:
        return 41

    return producer


def _coroutine() -> Callable[[], Any]:
    async def producer() -> int:
        await asyncio.sleep(0)
        return 41

    return producer


def _generator() -> Callable[[], Any]:
    def producer() -> Generator[int, None, None]:
        yield 40
        yield 41

    return producer


def _async_generator() -> Callable[[], Any]:
    async def producer() -> AsyncGenerator[int, None]:
        yield 40
        await asyncio.sleep(0)
        yield 41

    return producer


def _drive(kind: str, fn: Callable[[], Any]) -> Any:
    """Run the wrapped producer to its end as its caller would; its result."""
    if kind == "sync":
        return fn()
    if kind == "coroutine":
        return asyncio.run(fn())
    if kind == "generator":
        return list(fn())

    async def drain() -> list[int]:
        return [x async for x in fn()]

    return asyncio.run(drain())


KINDS = {
    "sync": (_sync, 41, inspect.isfunction),
    "coroutine": (_coroutine, 41, inspect.iscoroutinefunction),
    "generator": (_generator, [40, 41], inspect.isgeneratorfunction),
    "async generator": (_async_generator, [40, 41], inspect.isasyncgenfunction),
}


@contextmanager
def _client_gone() -> Iterator[None]:
    transport = Transport()
    transport.gone = True  # what an integration sets on http.disconnect
    token = publish(transport)
    try:
        yield
    finally:
        unpublish(token)


PATHS: dict[str, tuple[Callable[[], AbstractContextManager[Any]], bool, str]] = {
    # name: (context, capturing, the reason the counter gets)
    "counter only": (nullcontext, False, "ok"),
    "counter and capture": (capture_outcomes, True, "ok"),
    "client already gone": (_client_gone, False, "client_gone"),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
def test_success_is_recorded_once_on_every_path(kind: str, path: str) -> None:
    make, expected, is_kind = KINDS[kind]
    around, capturing, reason = PATHS[path]
    registry = CollectorRegistry()
    counter = Counter("paths", "x", ("producer", "reason"), registry=registry)
    wrapped = errclass.track(counter, name="p", logger=None)(make())
    assert is_kind(wrapped)  # the wrapper kept its kind: the matching copy runs

    with around() as captured:
        assert _drive(kind, wrapped) == expected
    counts = {
        r.value: counter_value("paths_total", registry, producer="p", reason=r.value)
        for r in errclass.Reason
    }
    assert counts == {r.value: float(r.value == reason) for r in errclass.Reason}
    if capturing:
        assert [(e.producer, e.reason.value, e.exception) for e in captured] == [("p", "ok", None)]


def test_a_producer_outliving_its_request_still_asks_its_transport() -> None:
    """A success reads the context only while some Transport is alive. A task
    spawned during a request holds the transport in its context, so a producer
    that finishes there after the request ended still hears that the client left;
    once the task is gone, so is the transport, and a success counts ``ok``."""
    gc.collect()
    before = len(_client_state.alive)
    registry = CollectorRegistry()
    counter = Counter("outlive", "x", ("producer", "reason"), registry=registry)
    wrapped = errclass.track(counter, name="p", logger=None)(_sync())
    assert "fast" in wrapped.__code__.co_filename  # the inlined fast ok is the one asked

    async def request() -> None:
        release = asyncio.Event()

        async def later() -> int:
            await release.wait()
            return wrapped()  # type: ignore[no-any-return]

        with _client_gone():
            task = asyncio.create_task(later())
        gc.collect()
        assert len(_client_state.alive) == before + 1  # kept by the task's context alone
        release.set()
        assert await task == 41

    asyncio.run(request())
    gc.collect()
    assert len(_client_state.alive) == before
    assert wrapped() == 41
    counts = {
        r: counter_value("outlive_total", registry, producer="p", reason=r)
        for r in ("ok", "client_gone")
    }
    assert counts == {"ok": 1.0, "client_gone": 1.0}
