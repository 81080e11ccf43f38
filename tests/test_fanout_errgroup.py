"""What a user porting Go errgroup code needs (issue 12): fail-fast, the consumer-role
``cancelled`` label, and the seed's two-phase child, against real loopback servers."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

import errclass
from errclass import Event
from errclass._fanout import FanoutError, fanout, fanout_sync
from errclass.testing import counter_value
from tests.support import QuietHandler, cancelled_repeatedly, serve_http, wait_until


def quiet(sink: list[Event]) -> dict[str, Any]:
    return {"sinks": [sink.append], "logger": None, "name": "t"}


# Fail-fast: the first error alone, as errgroup's Wait returns it; nothing cancelled


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_fail_fast_raises_the_first_failure_and_cancels_nothing(
    sink: list[Event], backend: str
) -> None:
    import anyio

    first, second = KeyError("first"), ValueError("second")
    finished = []

    async def fails(e: BaseException, delay: float) -> None:
        await anyio.sleep(delay)
        raise e

    async def slow() -> int:
        await anyio.sleep(0.15)
        finished.append(1)
        return 1

    async def main() -> BaseException:
        children = [partial(fails, second, 0.05), slow, partial(fails, first, 0.0)]
        with pytest.raises(KeyError) as info:
            await fanout(children, timeout=5, fail_fast=True, **quiet(sink))
        return info.value

    assert anyio.run(main, backend=backend) is first  # first in time, the very object
    assert finished == [1]  # the in-flight sibling was not cancelled
    assert sorted(e.reason.value for e in sink) == ["ok", "write_failed", "write_failed"]


def test_fail_fast_on_threads(sink: list[Event]) -> None:
    err = KeyError("first")

    def fails() -> None:
        raise err

    with pytest.raises(KeyError) as info:
        fanout_sync([partial(time.sleep, 0.05), fails], timeout=5, fail_fast=True, **quiet(sink))
    assert info.value is err
    assert len(sink) == 2


def test_fail_fast_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="fail_fast= must be True or False"):
        fanout_sync([time.time], timeout=5, fail_fast="yes")  # type: ignore[arg-type]


# The consumer role on errclass_fetch_outcomes_total{fanout, reason, cancelled}


def fetch_count(name: str, reason: str, cancelled: str) -> float:
    return counter_value(
        "errclass_fetch_outcomes_total", None, fanout=name, reason=reason, cancelled=cancelled
    )


async def test_we_cancelled_and_upstream_dropped_us_are_told_apart() -> None:
    import httpx

    from tests.support import resetting_upstream

    name = f"scheme-{uuid.uuid4().hex[:8]}"
    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.sleep(30)

    async def fetch(client: httpx.AsyncClient, url: str) -> bytes:
        async with client.stream("GET", url) as r:
            return b"".join([c async for c in r.aiter_bytes()])

    with resetting_upstream() as port:
        async with httpx.AsyncClient(timeout=5) as client:
            # The upstream resets the connection mid-body.
            with pytest.raises(FanoutError) as info:
                await fanout(
                    [partial(fetch, client, f"http://127.0.0.1:{port}/x")],
                    timeout=5, name=name, logger=None,
                )  # fmt: skip
    assert errclass.classify(info.value.exceptions[0], role="consumer").reason == "client_gone"
    assert fetch_count(name, "client_gone", "false") == 1  # the upstream dropped us

    caller = asyncio.create_task(fanout([hangs, hangs], timeout=30, name=name, logger=None))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert fetch_count(name, "client_gone", "true") == 2  # we cancelled them
    assert fetch_count(name, "client_gone", "false") == 1

    with pytest.raises(FanoutError):
        await fanout([hangs], timeout=0.05, name=name, logger=None)
    assert fetch_count(name, "deadline_exceeded", "true") == 1  # our own timeout cut it
    assert fetch_count(name, "ok", "true") == 0  # every series exists, at 0


def test_trio_our_timeout_and_cancel_are_cancelled_true() -> None:
    import trio

    name = f"scheme-trio-{uuid.uuid4().hex[:8]}"

    async def hangs() -> None:
        await trio.sleep(30)

    async def main() -> None:
        with pytest.raises(FanoutError):
            await fanout([hangs], timeout=0.05, name=name, logger=None)
        with trio.move_on_after(0.05):
            await fanout([hangs], timeout=30, name=name, logger=None)

    trio.run(main)
    assert fetch_count(name, "deadline_exceeded", "true") == 1
    assert fetch_count(name, "client_gone", "true") == 1


def test_thread_abandoned_at_its_timeout_is_not_cancelled() -> None:
    name = f"scheme-threads-{uuid.uuid4().hex[:8]}"
    with pytest.raises(FanoutError):
        fanout_sync([partial(time.sleep, 0.3)], timeout=0.05, name=name, logger=None)
    assert fetch_count(name, "deadline_exceeded", "false") == 1  # the thread runs on


# The seed's two-phase child (get_blocks.go): a cancellable existence check,
# then a fetch detached like context.WithoutCancel


class _Peer(QuietHandler):
    """/exists/{h} answers after a moment; /subtree/{h} streams 4 chunks slowly."""

    protocol_version = "HTTP/1.1"
    served: dict[str, int]  # h -> bytes written of /subtree/{h}
    fetch_started: threading.Event

    def do_GET(self) -> None:
        kind, h = self.path.strip("/").split("/")
        if kind == "exists":
            time.sleep(0.1)
            self.reply(b"no")
            return
        self.fetch_started.set()
        self.send_response(200)
        self.send_header("content-length", str(4 * 1000))
        self.end_headers()
        try:
            for _ in range(4):
                self.wfile.write(b"s" * 1000)
                self.wfile.flush()
                self.served[h] = self.served.get(h, 0) + 1000
                time.sleep(0.05)
        except OSError:
            pass


@pytest.fixture
def peer() -> Iterator[tuple[str, type[_Peer]]]:
    handler = type("Peer", (_Peer,), {"served": {}, "fetch_started": threading.Event()})
    with serve_http(handler) as url:
        yield url, handler


async def fetch_and_store(client: Any, h: str, stored: dict[str, bytes]) -> str:
    """The README's port of fetchAndStoreSubtreeData."""
    exists = await client.get(f"/exists/{h}")  # cancellable: a cancelled caller stops here
    if exists.text == "yes":
        return "cached"

    async def fetch() -> str:
        async with client.stream("GET", f"/subtree/{h}") as r:
            stored[h] = b"".join([c async for c in r.aiter_bytes()])
        return "fetched"

    return await errclass.detached(fetch)  # runs to completion: context.WithoutCancel


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("phase", ["check", "fetch"])
def test_two_phase_child(
    peer: tuple[str, type[_Peer]], sink: list[Event], backend: str, phase: str
) -> None:
    import anyio
    import httpx

    url, handler = peer
    stored: dict[str, bytes] = {}

    async def main() -> bool:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def cancel_during() -> None:
                        if phase == "check":
                            await anyio.sleep(0.03)  # mid existence check
                        else:
                            await anyio.to_thread.run_sync(handler.fetch_started.wait, 5)
                        scope.cancel()

                    tg.start_soon(cancel_during)
                    await fanout(
                        [partial(fetch_and_store, client, "h1", stored)],
                        timeout=5, **quiet(sink),
                    )  # fmt: skip
        return bool(scope.cancelled_caught)

    assert anyio.run(main, backend=backend) is True  # the caller saw its cancellation
    if phase == "check":
        assert not handler.fetch_started.is_set() and stored == {}
        assert [e.reason.value for e in sink] == ["client_gone"]
    else:  # the fetch had started: it completed, on both ends
        assert stored == {"h1": b"s" * 4000}
        # The peer counts a chunk after its write returns, which may be after we read it.
        wait_until(lambda: handler.served == {"h1": 4000}, 5, lambda: f"served {handler.served}")
        assert [e.reason.value for e in sink] == ["ok"]


async def test_detached_still_bounded_by_the_childs_timeout(sink: list[Event]) -> None:
    async def never() -> None:
        await errclass.detached(partial(asyncio.sleep, 30))

    t0 = time.monotonic()
    with pytest.raises(FanoutError) as info:
        await fanout([never], timeout=0.1, **quiet(sink))
    assert time.monotonic() - t0 < 5
    assert isinstance(info.value.exceptions[0], TimeoutError)
    assert [e.reason.value for e in sink] == ["deadline_exceeded"]


@pytest.fixture(params=[False, True], ids=["plain-asyncio", "anyio-loaded"])
def anyio_loaded(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether anyio is in the process: detached() then waits in an anyio shield. A
    plain asyncio app has no anyio loaded (the test process always has: its plugin)."""
    if not request.param:
        monkeypatch.delitem(sys.modules, "anyio", raising=False)
    return bool(request.param)


@pytest.mark.usefixtures("anyio_loaded")
async def test_detached_fetch_outlives_repeated_cancellation(sink: list[Event]) -> None:
    # The caller cancelled three times while a detached fetch runs: the fetch still
    # completes before the fan-out re-raises, and its result is the child's. Without
    # anyio in the process (a plain asyncio app) the second cancellation used to end
    # detached()'s wait: the fan-out returned while the fetch ran on, orphaned.
    fetched = []

    async def fetch() -> int:
        await asyncio.sleep(0.15)
        fetched.append(1)
        return 7

    async def child() -> int:
        return int(await errclass.detached(fetch))

    await cancelled_repeatedly(fanout([child], timeout=5, **quiet(sink)))
    assert fetched == [1]  # done when the fan-out returned, not later
    assert [e.reason.value for e in sink] == ["ok"]


@pytest.mark.usefixtures("anyio_loaded")
async def test_detached_fetch_cut_by_its_childs_timeout_after_the_caller_cancelled(
    sink: list[Event],
) -> None:
    # Past the caller's cancellation the fetch runs on, until the child's own timeout:
    # that cuts it, and it has ended by the time the fan-out re-raises.
    ended = []

    async def fetch() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            ended.append(1)

    async def child() -> None:
        await errclass.detached(fetch)

    t0 = time.monotonic()
    caller = asyncio.create_task(fanout([child], timeout=0.2, **quiet(sink)))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(FanoutError) as info:
        await caller
    assert ended == [1] and time.monotonic() - t0 < 5
    timed_out, cancel = info.value.exceptions
    assert isinstance(timed_out, TimeoutError) and isinstance(cancel, asyncio.CancelledError)
    assert [e.reason.value for e in sink] == ["deadline_exceeded"]


async def test_detached_outside_a_fanout_child_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"inside an errclass\.fanout child"):
        await errclass.detached(partial(asyncio.sleep, 0))


# The default name on threads too


def test_fanout_sync_default_name_is_the_caller(sink: list[Event]) -> None:
    fanout_sync([time.time], timeout=5, sinks=[sink.append], logger=None)
    assert sink[0].producer == f"{__name__}.test_fanout_sync_default_name_is_the_caller"


def test_fanout_sync_reuses_worker_threads(sink: list[Event]) -> None:
    local = threading.local()
    made = []

    def child() -> int:
        if not hasattr(local, "client"):
            local.client = object()  # a thread-local client, made once per worker
            made.append(threading.get_ident())
        time.sleep(0.002)
        return id(local.client)

    for _ in range(3):
        fanout_sync([child] * 40, timeout=5, limit=4, **quiet(sink))
    assert len(made) <= 8  # not one per child (120): the workers are kept and reused
