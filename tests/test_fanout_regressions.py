"""Regressions for issue 12, items 1 to 6: each failed on the code before the fix."""

from __future__ import annotations

import asyncio
import urllib.request
import warnings
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import pytest

from errclass import Event
from errclass._fanout import FanoutError, fanout, fanout_sync
from tests.support import QuietHandler, serve_http


def quiet(sink: list[Event]) -> dict[str, Any]:
    return {"sinks": [sink.append], "logger": None, "name": "t"}


def run_trio(fn: Callable[[], Awaitable[Any]]) -> Any:
    import trio

    return trio.run(fn)


# 1. fanout_sync stopped starting children once every running one had ended during a wait


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_threads_low_limit_runs_every_child(sink: list[Event], limit: int) -> None:
    for _ in range(5):  # it failed 20 of 20 times at limit=1, sometimes at 2
        sink.clear()
        out = fanout_sync(
            [partial(lambda i: i, i) for i in range(20)], timeout=5, limit=limit, **quiet(sink)
        )
        assert out == list(range(20))
        assert len(sink) == 20


def test_threads_start_after_failure_starts_everything(sink: list[Event]) -> None:
    def boom() -> None:
        raise KeyError("first")

    children: list[Callable[[], Any]] = [boom] + [partial(lambda i: i, i) for i in range(1, 10)]
    with pytest.raises(FanoutError) as info:
        fanout_sync(children, timeout=5, limit=1, after_failure="start", **quiet(sink))
    assert info.value.not_started == ()
    assert info.value.results == {i: i for i in range(1, 10)}
    assert info.value.indices == (0,)


class _Body(QuietHandler):
    def do_GET(self) -> None:
        self.reply(self.path.encode())


@pytest.fixture
def http_server() -> Iterator[str]:
    with serve_http(_Body) as url:
        yield url


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body


def test_threads_real_http_fetches_all_complete(sink: list[Event], http_server: str) -> None:
    paths = [f"/item/{i}" for i in range(300)]
    out = fanout_sync(
        [partial(_get, http_server + p) for p in paths], timeout=10, limit=2, **quiet(sink)
    )
    assert out == [p.encode() for p in paths]
    assert sorted(e.reason.value for e in sink) == ["ok"] * len(paths)


# 2. trio, detached: a cancel arriving when every child was already running was lost


@pytest.mark.parametrize(("n", "limit"), [(2, 8), (3, 3)])
def test_trio_detached_cancel_with_every_child_running_reaches_caller(
    sink: list[Event], n: int, limit: int
) -> None:
    import trio

    finished, after = [], []

    async def child(i: int) -> int:
        await trio.sleep(0.2)
        finished.append(i)
        return i

    async def main() -> bool:
        with trio.move_on_after(0.05) as scope:
            await fanout(
                [partial(child, i) for i in range(n)],
                timeout=5,
                limit=limit,
                detached=True,
                **quiet(sink),
            )
            after.append("returned as if nothing happened")
        return bool(scope.cancelled_caught)

    assert run_trio(main) is True
    assert after == []
    assert sorted(finished) == list(range(n))  # detached: they finished
    assert sorted(e.reason.value for e in sink) == ["ok"] * n


# 3. FanoutError.derive(): its attributes survive except* and trio's scope splitting


def test_split_keeps_fanout_attributes() -> None:
    a, b, c = KeyError("a"), ValueError("b"), KeyError("c")
    group = FanoutError(
        "3 of 5 fanout children failed", [a, b, c], [0, 2, 4], {1: "r1", 3: "r3"}, []
    )
    keys, rest = group.split(KeyError)
    assert isinstance(keys, FanoutError) and isinstance(rest, FanoutError)
    assert keys.exceptions == (a, c) and keys.indices == (0, 4)
    assert rest.exceptions == (b,) and rest.indices == (2,)
    assert keys.results == rest.results == {1: "r1", 3: "r3"}
    assert isinstance(keys, ExceptionGroup)


async def test_except_star_group_is_a_fanout_error(sink: list[Event]) -> None:
    async def fail(e: BaseException) -> None:
        raise e

    async def ok() -> int:
        await asyncio.sleep(0.01)
        return 7

    caught: list[BaseException] = []
    err = KeyError("k")
    try:
        await fanout(
            [ok, partial(fail, ValueError("v")), partial(fail, err)],
            timeout=5,
            after_failure="start",
            **quiet(sink),
        )
    except* KeyError as group:
        caught.append(group)
    except* ValueError:
        pass
    [group] = caught
    assert isinstance(group, FanoutError)
    assert group.exceptions == (err,)
    assert group.indices == (2,)
    assert group.results == {0: 7}
    assert group.not_started == ()


def test_trio_fanout_error_leaving_a_cancelled_scope_is_still_a_fanout_error(
    sink: list[Event],
) -> None:
    import trio

    err = ValueError("before the cancel")

    async def fails() -> None:
        raise err

    async def slow() -> int:
        await trio.sleep(0.3)
        return 1

    async def main() -> None:
        with trio.move_on_after(0.05):
            await fanout([fails, slow], timeout=5, detached=True, **quiet(sink))

    with pytest.raises(FanoutError) as info:
        run_trio(main)
    assert info.value.exceptions == (err,)
    assert info.value.indices == (0,)
    assert info.value.results == {1: 1}


# 4. The default name is the function that called fanout(), whatever runs the coroutine


async def _named_by_caller(sink: list[Event], how: str) -> None:
    async def one() -> int:
        return 1

    call = fanout([one], timeout=5, sinks=[sink.append], logger=None)
    if how == "create_task":
        await asyncio.create_task(call)
    elif how == "wait_for":
        await asyncio.wait_for(call, 5)
    else:
        await asyncio.gather(call)


@pytest.mark.parametrize("how", ["create_task", "wait_for", "gather"])
async def test_default_name_is_the_caller_through_a_task(sink: list[Event], how: str) -> None:
    await _named_by_caller(sink, how)
    assert sink[0].producer == f"{__name__}._named_by_caller"


# 5. Async callables in fanout_sync, sync callables in fanout


def test_fanout_sync_rejects_async_callables(sink: list[Event]) -> None:
    async def fetch() -> int:
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" fails the test
        with pytest.raises(TypeError, match=r"async.*use errclass\.fanout"):
            fanout_sync([fetch], timeout=5, **quiet(sink))
        with pytest.raises(TypeError, match=r"async.*use errclass\.fanout"):
            fanout_sync([partial(fetch)], timeout=5, **quiet(sink))
    assert sink == []


def test_fanout_sync_child_returning_a_coroutine_fails_clearly(sink: list[Event]) -> None:
    async def fetch() -> int:
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FanoutError) as info:
            fanout_sync([lambda: fetch(), lambda: 2], timeout=5, **quiet(sink))
    [err] = info.value.exceptions
    assert isinstance(err, TypeError) and "errclass.fanout" in str(err)
    assert info.value.results == {1: 2}


async def test_fanout_rejects_sync_callables(sink: list[Event]) -> None:
    with pytest.raises(FanoutError) as info:
        await fanout([lambda: 3], timeout=5, **quiet(sink))
    [err] = info.value.exceptions
    assert isinstance(err, TypeError) and "fanout_sync" in str(err)


# 6. trio starts `limit` children at once, as asyncio does


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_first_child_failing_at_once_does_not_keep_siblings_from_starting(
    sink: list[Event], backend: str
) -> None:
    import anyio

    async def fails() -> None:
        raise KeyError("at once")

    async def ok(i: int) -> int:
        await anyio.sleep(0.01)
        return i

    async def main() -> FanoutError:
        with pytest.raises(FanoutError) as info:
            await fanout(
                [fails, partial(ok, 1), partial(ok, 2), partial(ok, 3)],
                timeout=5,
                limit=3,
                **quiet(sink),
            )
        return info.value

    for _ in range(10):  # trio's scheduling order varies from batch to batch
        group = anyio.run(main, backend=backend)
        assert group.results == {1: 1, 2: 2}  # started with the failing one: limit=3 at once
        assert group.not_started == (3,)
