"""Guarantee 6: every row of the default rule table, with real exceptions.

Each exception here is captured from a real operation on loopback (sockets,
TLS, HTTP clients against a misbehaving server, gRPC, uvicorn, werkzeug, anyio,
trio, uvloop, /dev/full) unless its test says it is constructed, and why.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import importlib
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import errclass
from errclass import Outcome, Policy, Reason, classify
from errclass import rules as R
from errclass._deadline import watching
from tests.support import modules_imported, read_request_head, require_tool, wait_until

CG, DE, WF = Reason.CLIENT_GONE, Reason.DEADLINE_EXCEEDED, Reason.WRITE_FAILED


def caught(fn: Callable[[], object]) -> BaseException:
    """The exception *fn* raises (the test fails if it raises none)."""
    try:
        fn()
    except BaseException as e:  # capturing is the point
        return e
    pytest.fail(f"{fn} raised nothing")


async def acaught(coro: Any) -> BaseException:
    try:
        await coro
    except BaseException as e:
        return e
    pytest.fail("the coroutine raised nothing")


def check(
    exc: BaseException,
    producer: Reason,
    consumer: Reason | None = None,
    *,
    rule: str | None = None,
    error_type: str | None = None,
) -> Outcome:
    """Assert *exc*'s reason in both roles (consumer defaults to producer's)."""
    out = classify(exc)
    assert out.reason is producer, (exc, out)
    assert classify(exc, role="consumer").reason is (consumer or producer), exc
    if rule is not None:
        assert out.rule == rule, (exc, out)
    if error_type is not None:
        assert out.error_type == error_type, (exc, out)
    return out


def linger0(sock: socket.socket) -> None:
    """Make close() send RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@contextlib.contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(ours, peer): a connected loopback TCP pair."""
    with socket.create_server(("127.0.0.1", 0)) as ls:
        ours = socket.create_connection(ls.getsockname(), timeout=5)
        peer, _ = ls.accept()
    with ours, peer:
        yield ours, peer


def peer_gone(sock: socket.socket) -> None:
    """Wait until the peer's FIN or RST reached *sock* (it turns readable)."""
    wait_until(lambda: select.select([sock], [], [], 0)[0], 5, "the peer's FIN/RST arrived")


def send_until_error(sock: socket.socket) -> None:
    sock.settimeout(5)
    for _ in range(1000):
        sock.sendall(b"x" * 65536)


# --------------------------------------------------------------------------- names


# Every class the default rules name, as it is really imported.
REAL_CLASSES = {
    "trio.Cancelled": "trio.Cancelled",
    "grpc.FutureCancelledError": "grpc.FutureCancelledError",
    "grpc.RpcError": "grpc.RpcError",
    "trio.TooSlowError": "trio.TooSlowError",
    "httpx.TimeoutException": "httpx.ReadTimeout",
    "httpcore.TimeoutException": "httpcore.ReadTimeout",
    "urllib3.TimeoutError": "urllib3.exceptions.ReadTimeoutError",
    "requests.Timeout": "requests.exceptions.ReadTimeout",
    "aiohttp.ServerTimeoutError": "aiohttp.ServerTimeoutError",
    "aiohttp.SocketTimeoutError": "aiohttp.SocketTimeoutError",
    "aiohttp.ConnectionTimeoutError": "aiohttp.ConnectionTimeoutError",
    "sse_starlette.SendTimeoutError": "sse_starlette.sse.SendTimeoutError",
    "aiohttp.ClientConnectionResetError": "aiohttp.ClientConnectionResetError",
    "httpx.HTTPError": "httpx.ReadError",
    "httpx.HTTPStatusError": "httpx.HTTPStatusError",
    "requests.HTTPError": "requests.HTTPError",
    "aiohttp.ClientResponseError": "aiohttp.ClientResponseError",
    "httpcore.*": "httpcore.ReadError",
    "requests.RequestException": "requests.exceptions.ChunkedEncodingError",
    "urllib3.HTTPError": "urllib3.exceptions.ProtocolError",
    "aiohttp.ClientError": "aiohttp.ClientPayloadError",
    "starlette.ClientDisconnect": "starlette.requests.ClientDisconnect",
    "uvicorn.ClientDisconnected": "uvicorn.protocols.utils.ClientDisconnected",
    "anyio.BrokenResourceError": "anyio.BrokenResourceError",
    "anyio.EndOfStream": "anyio.EndOfStream",
    "trio.BrokenResourceError": "trio.BrokenResourceError",
    "werkzeug.ClientDisconnected": "werkzeug.exceptions.ClientDisconnected",
    "starlette.WebSocketDisconnect": "starlette.websockets.WebSocketDisconnect",
    "anyio.ClosedResourceError": "anyio.ClosedResourceError",
    "trio.ClosedResourceError": "trio.ClosedResourceError",
    "h11.LocalProtocolError": "h11.LocalProtocolError",
    "h11.RemoteProtocolError": "h11.RemoteProtocolError",
}


def load(path: str) -> type[BaseException]:
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type)
    return cls


def named_rules() -> list[tuple[errclass.Rule, str]]:
    every = [*R.DEFAULT, R.CLOSED_RESOURCE_IS_CLIENT_GONE]
    return [(rule, n) for rule in every for n in rule.names]  # type: ignore[union-attr]


def test_every_name_in_the_rules_is_a_real_installed_class() -> None:
    names = {n for _, n in named_rules()}
    assert names == set(REAL_CLASSES), "REAL_CLASSES must list every name the rules use"
    for rule, name in named_rules():
        cls = load(REAL_CLASSES[name])
        assert rule.accepts_type(cls), (rule.name, name, cls.__module__)
        assert Policy().error_type(cls) != "_OTHER", cls


def test_import_errclass_imports_no_framework() -> None:
    code = "import errclass, errclass.rules\nerrclass.classify(BrokenPipeError())\n"
    watched = ["trio", "anyio", "httpx", "httpcore", "requests", "urllib3", "aiohttp", "grpc"]
    watched += ["starlette", "uvicorn", "werkzeug", "h11", "uvloop", "sse_starlette"]
    assert modules_imported(code, watched) == []


# --------------------------------------------------------------------------- row 1


async def test_row1_asyncio_cancellation_is_client_gone() -> None:
    started = asyncio.Event()
    seen: list[BaseException] = []

    async def producer() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as e:
            seen.append(e)
            raise

    task = asyncio.create_task(producer())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    check(seen[0], CG, rule="cancelled", error_type="asyncio.exceptions.CancelledError")


async def test_row1_cancellation_under_plain_asyncio_timeout() -> None:
    # Inside the block the deadline is invisible (client_gone); outside it is a TimeoutError.
    inner: list[Outcome] = []
    with pytest.raises(TimeoutError) as outer:
        async with asyncio.timeout(0.01):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as e:
                inner.append(classify(e))
                raise
    assert inner[0].reason is CG
    check(outer.value, DE, rule="timeout", error_type="TimeoutError")


async def test_row1_cancellation_under_errclass_deadline_is_deadline_exceeded() -> None:
    inner: list[Outcome] = []
    with pytest.raises(TimeoutError) as outer:
        async with errclass.deadline(0.01):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as e:
                inner.append(classify(e))
                inner.append(classify(e, policy=Policy(fold_deadlines=True)))
                raise
    assert inner[0].reason is DE
    assert inner[0].rule == "cancelled"
    assert inner[1].reason is CG
    check(outer.value, DE)


async def test_row1_outside_cancel_within_unexpired_deadline_is_client_gone() -> None:
    seen: list[Outcome] = []

    async def producer() -> None:
        async with errclass.deadline(10):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError as e:
                seen.append(classify(e))
                raise

    task = asyncio.create_task(producer())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[0].reason is CG


async def test_row1_a_watched_checker_marks_cancellation_as_deadline() -> None:
    # What an integration does with gRPC's context.time_remaining() <= 0.
    class Remaining:
        def __init__(self, left: float) -> None:
            self.left = left

        def expired(self) -> bool:
            return self.left <= 0

    exc = await acaught(asyncio.wait_for(asyncio.sleep(10), 0.001))
    cancelled = exc.__context__
    assert isinstance(cancelled, asyncio.CancelledError)
    with watching(Remaining(0)):
        assert classify(cancelled).reason is DE
    with watching(Remaining(5)):
        assert classify(cancelled).reason is CG


def test_row1_anyio_cancel_class_and_fail_after_on_asyncio() -> None:
    import anyio

    seen: list[BaseException] = []

    async def main() -> None:
        with anyio.fail_after(0.01):
            try:
                await anyio.sleep(10)
            except anyio.get_cancelled_exc_class() as e:
                seen.append(e)
                raise

    outer = caught(lambda: anyio.run(main, backend="asyncio"))
    assert isinstance(seen[0], asyncio.CancelledError)
    check(seen[0], CG, rule="cancelled")
    check(outer, DE, rule="timeout")


def test_row1_trio_cancelled_and_too_slow() -> None:
    import trio

    seen: list[BaseException] = []

    async def main() -> None:
        with trio.fail_after(0.01):
            try:
                await trio.sleep(10)
            except trio.Cancelled as e:
                seen.append(e)
                raise

    outer = caught(lambda: trio.run(main))
    assert type(outer) is trio.TooSlowError
    assert not isinstance(outer, TimeoutError)
    check(seen[0], CG, rule="cancelled", error_type="trio.Cancelled")
    check(outer, DE, rule="timeout", error_type="trio.TooSlowError")


# --------------------------------------------------------------------------- rows 2, 3


def test_row2_generator_exit_from_an_early_close() -> None:
    seen: list[BaseException] = []

    def producer() -> Iterator[int]:
        try:
            yield 1
            yield 2
        except GeneratorExit as e:
            seen.append(e)
            raise

    gen = producer()
    next(gen)
    gen.close()
    check(seen[0], CG, rule="generator_exit", error_type="GeneratorExit")
    assert classify(seen[0], policy=Policy(generator_exit="write_failed")).reason is WF
    ok = classify(seen[0], policy=Policy(generator_exit=Reason.OK))
    assert ok.reason is Reason.OK
    assert ok.error_type is None  # no error.type on a non-failure


def test_row3_concurrent_futures_cancelled() -> None:
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait, 5)
        queued = pool.submit(int)
        assert queued.cancel()
        gate.set()
        exc = caught(queued.result)
    check(exc, CG, rule="future_cancelled", error_type="concurrent.futures.CancelledError")


# --------------------------------------------------------------------------- row 4: gRPC


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[Any]:
    import grpc

    def unary(req: bytes, ctx: Any) -> bytes:
        if req == b"sleep":
            time.sleep(2)
        if req == b"internal":
            ctx.abort(grpc.StatusCode.INTERNAL, "boom")
        return req

    def stream(req: bytes, ctx: Any) -> Iterator[bytes]:
        for _ in range(200):
            yield b"x"
            time.sleep(0.02)

    handler = grpc.method_handlers_generic_handler(
        "t.T",
        {
            "U": grpc.unary_unary_rpc_method_handler(unary),
            "S": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        channel.close()
        server.stop(0).wait(5)


def test_row4_grpc_status_codes(grpc_server: Any) -> None:
    import grpc

    unary = grpc_server.unary_unary("/t.T/U")
    stream = grpc_server.unary_stream("/t.T/S")

    exc = caught(lambda: unary(b"sleep", timeout=0.1))
    assert exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    check(exc, DE, rule="grpc_status", error_type="grpc._InactiveRpcError")

    call = stream(b"x")
    next(call)
    call.cancel()
    exc = caught(lambda: next(call))
    assert exc.code() is grpc.StatusCode.CANCELLED  # type: ignore[attr-defined]
    check(exc, CG, rule="grpc_status")

    exc = caught(lambda: unary(b"internal", timeout=5))
    assert exc.code() is grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    check(exc, WF, rule="grpc_status")

    future = unary.future(b"sleep")
    future.cancel()
    exc = caught(future.result)
    assert type(exc) is grpc.FutureCancelledError
    check(exc, CG, rule="future_cancelled", error_type="grpc.FutureCancelledError")


def test_row4_grpc_unavailable_depends_on_role() -> None:
    import grpc

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            exc = caught(lambda: channel.unary_unary("/t.T/U")(b"x", timeout=5))
    assert exc.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    check(exc, WF, CG, rule="grpc_status")


def test_row4_grpc_unavailable_when_the_server_goes_mid_stream() -> None:
    import grpc

    def stream(req: bytes, ctx: Any) -> Iterator[bytes]:
        for _ in range(500):
            yield b"x"
            time.sleep(0.01)

    handler = grpc.method_handlers_generic_handler(
        "t.T", {"S": grpc.unary_stream_rpc_method_handler(stream)}
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream("/t.T/S")(b"x", timeout=10)
        next(call)
        server.stop(0).wait(5)
        exc = caught(lambda: list(call))
    assert exc.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    check(exc, WF, CG, rule="grpc_status")


def test_row4_grpc_aio_deadline() -> None:
    import grpc

    async def main(port: int) -> BaseException:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            return await acaught(channel.unary_unary("/t.T/U")(b"sleep", timeout=0.1))

    async def serve() -> BaseException:
        async def unary(req: bytes, ctx: Any) -> bytes:
            await asyncio.sleep(2)
            return req

        handler = grpc.method_handlers_generic_handler(
            "t.T", {"U": grpc.unary_unary_rpc_method_handler(unary)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            return await main(port)
        finally:
            await server.stop(0)

    exc = asyncio.run(serve())
    assert type(exc) is grpc.aio.AioRpcError
    check(exc, DE, rule="grpc_status", error_type="grpc.aio.AioRpcError")


# --------------------------------------------------------------------------- row 5: clients


class BadUpstream:
    """A loopback HTTP/1.1 server that misbehaves by path.

    ``/reset``: headers and 10 body bytes of 100000, then RST. ``/reset-early``: RST
    instead of a response. ``/cut``: the same short body, then FIN. ``/chunked-cut``:
    one chunk, then FIN. ``/stall``: the short body, then silence until stopped.
    ``/nothing``: FIN instead of a response. ``/500``: a complete 500 response.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> BadUpstream:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)
        self.sock.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = read_request_head(conn)
            if data is None:
                return
            path = data.split(b" ", 2)[1].decode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            if path == "/nothing":
                return
            if path == "/500":
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                return
            if path == "/reset-early":
                linger0(conn)
                return
            if path == "/chunked-cut":
                conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                time.sleep(0.1)
                return
            conn.sendall(head + b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
            if path == "/reset":
                time.sleep(0.2)  # let the client read the headers first
                linger0(conn)
            elif path == "/stall":
                self.stopping.wait(10)
            else:
                time.sleep(0.1)


@pytest.fixture(scope="module")
def upstream() -> Iterator[BadUpstream]:
    with BadUpstream() as up:
        yield up


READ_TIMEOUT = 0.3


def read_httpx(up: BadUpstream, path: str) -> None:
    import httpx

    with httpx.stream("GET", up.url(path), timeout=httpx.Timeout(5, read=READ_TIMEOUT)) as r:
        for _ in r.iter_bytes():
            pass


def read_httpx_async(up: BadUpstream, path: str) -> None:
    import httpx

    async def main() -> None:
        timeout = httpx.Timeout(5, read=READ_TIMEOUT)
        async with httpx.AsyncClient(timeout=timeout) as c, c.stream("GET", up.url(path)) as r:
            async for _ in r.aiter_bytes():
                pass

    asyncio.run(main())


def read_requests(up: BadUpstream, path: str) -> None:
    import requests

    with requests.get(up.url(path), stream=True, timeout=(5, READ_TIMEOUT)) as r:
        for _ in r.iter_content(100):
            pass


def read_urllib3(up: BadUpstream, path: str) -> None:
    import urllib3

    with urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=READ_TIMEOUT), retries=False
    ) as pool:
        r = pool.request("GET", up.url(path), preload_content=False)
        for _ in r.stream(100):
            pass


def read_http_client(up: BadUpstream, path: str) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=READ_TIMEOUT)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
    finally:
        conn.close()


def read_aiohttp(up: BadUpstream, path: str) -> None:
    import aiohttp

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=10, sock_read=READ_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as s, s.get(up.url(path)) as r:
            await r.read()

    asyncio.run(main())


# (client, path) -> (exception class, chain it must hold, producer reason, consumer reason)
UPSTREAM_CASES: list[tuple[Callable[[BadUpstream, str], None], str, str, tuple[str, ...]]] = [
    (read_httpx, "/reset", "httpx.ReadError", ("ConnectionResetError",)),
    (
        read_httpx_async,
        "/reset",
        "httpx.ReadError",
        ("httpcore.ReadError", "anyio.BrokenResourceError", "ConnectionResetError"),
    ),
    (read_httpx, "/cut", "httpx.RemoteProtocolError", ("h11.RemoteProtocolError",)),
    (read_httpx_async, "/nothing", "httpx.RemoteProtocolError", ()),
    (read_requests, "/reset", "requests.exceptions.ChunkedEncodingError", ()),
    (read_requests, "/cut", "requests.exceptions.ChunkedEncodingError", ()),
    (read_requests, "/nothing", "requests.exceptions.ConnectionError", ("RemoteDisconnected",)),
    (read_urllib3, "/reset", "urllib3.exceptions.ProtocolError", ("ConnectionResetError",)),
    (read_urllib3, "/cut", "urllib3.exceptions.ProtocolError", ("IncompleteRead",)),
    (read_http_client, "/nothing", "http.client.RemoteDisconnected", ()),
    (read_http_client, "/cut", "http.client.IncompleteRead", ()),
    (read_http_client, "/chunked-cut", "http.client.IncompleteRead", ()),
    (read_aiohttp, "/cut", "aiohttp.client_exceptions.ClientPayloadError", ()),
    (read_aiohttp, "/chunked-cut", "aiohttp.client_exceptions.ClientPayloadError", ()),
    (read_aiohttp, "/nothing", "aiohttp.client_exceptions.ServerDisconnectedError", ()),
    (read_aiohttp, "/reset-early", "aiohttp.client_exceptions.ClientOSError", ()),
]

TIMEOUT_CASES: list[tuple[Callable[[BadUpstream, str], None], str, tuple[str, ...]]] = [
    (read_httpx, "httpx.ReadTimeout", ("httpcore.ReadTimeout",)),
    (read_httpx_async, "httpx.ReadTimeout", ("httpcore.ReadTimeout",)),
    # requests reports a streaming read timeout as ConnectionError; the timeout is in __context__
    (read_requests, "requests.exceptions.ConnectionError", ("ReadTimeoutError",)),
    (read_urllib3, "urllib3.exceptions.ReadTimeoutError", ()),
    (read_http_client, "TimeoutError", ()),
    (read_aiohttp, "aiohttp.client_exceptions.SocketTimeoutError", ()),
]


def chain_names(exc: BaseException) -> list[str]:
    out: list[str] = []
    e: BaseException | None = exc
    while e is not None and len(out) < 10:
        out.append(errclass.Policy().error_type(type(e)))
        e = e.__cause__ or e.__context__
    return out


def in_chain(exc: BaseException, name: str) -> bool:
    return any(n == name or n.endswith("." + name) for n in chain_names(exc))


def full_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


@pytest.mark.parametrize(
    ("read", "path", "expected", "chain"),
    UPSTREAM_CASES,
    ids=[f"{c[0].__name__}{c[1]}" for c in UPSTREAM_CASES],
)
def test_row5_broken_upstream_write_failed_as_producer_client_gone_as_consumer(
    upstream: BadUpstream,
    read: Callable[[BadUpstream, str], None],
    path: str,
    expected: str,
    chain: tuple[str, ...],
) -> None:
    exc = caught(lambda: read(upstream, path))
    assert full_name(exc) == expected, chain_names(exc)
    for name in chain:
        assert in_chain(exc, name), chain_names(exc)
    check(exc, WF, CG, rule="upstream_client")


@pytest.mark.parametrize(
    ("read", "expected", "chain"), TIMEOUT_CASES, ids=[c[0].__name__ for c in TIMEOUT_CASES]
)
def test_row5_6_upstream_read_timeout_is_deadline_exceeded(
    upstream: BadUpstream,
    read: Callable[[BadUpstream, str], None],
    expected: str,
    chain: tuple[str, ...],
) -> None:
    exc = caught(lambda: read(upstream, "/stall"))
    assert full_name(exc) == expected, chain_names(exc)
    for name in chain:
        assert in_chain(exc, name), chain_names(exc)
    out = check(exc, DE)
    assert out.error_type == Policy().error_type(type(exc)) != "_OTHER"


def test_row5_error_status_is_a_deliberate_answer_not_a_peer_gone(upstream: BadUpstream) -> None:
    import aiohttp
    import httpx
    import requests

    async def aiohttp_500() -> None:
        async with aiohttp.ClientSession() as s, s.get(upstream.url("/500")) as r:
            r.raise_for_status()

    for exc in (
        caught(lambda: httpx.get(upstream.url("/500"), timeout=5).raise_for_status()),
        caught(lambda: requests.get(upstream.url("/500"), timeout=5).raise_for_status()),
        caught(lambda: asyncio.run(aiohttp_500())),
    ):
        response = getattr(exc, "response", None)
        status = exc.status if response is None else response.status_code  # type: ignore[attr-defined]
        assert status == 500, exc
        check(exc, WF, WF, rule="http_status")


def test_row14_httpx_stream_closed_is_our_own_misuse(upstream: BadUpstream) -> None:
    import httpx

    with httpx.Client(timeout=5) as client, client.stream("GET", upstream.url("/500")) as r:
        pass
    exc = caught(r.read)
    assert type(exc) is httpx.StreamClosed
    check(exc, WF, WF, rule="default", error_type="httpx.StreamClosed")


def test_row5_requests_streaming_timeout_is_a_connection_error_with_context(
    upstream: BadUpstream,
) -> None:
    import requests
    import urllib3

    exc = caught(lambda: read_requests(upstream, "/stall"))
    assert type(exc) is requests.ConnectionError
    assert exc.__cause__ is None
    assert type(exc.__context__) is urllib3.exceptions.ReadTimeoutError
    check(exc, DE, rule="upstream_client")
    # without its context the same exception is an upstream break
    exc.__context__ = None
    check(exc, WF, CG, rule="upstream_client")


def test_row5_requests_read_timeout_before_headers(upstream: BadUpstream) -> None:
    import requests

    # /stall sends headers; a port that accepts but never answers gives ReadTimeout proper.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        exc = caught(lambda: requests.get(url, timeout=(5, READ_TIMEOUT)))
    assert type(exc) is requests.ReadTimeout
    check(exc, DE, rule="upstream_client", error_type="requests.exceptions.ReadTimeout")


# --------------------------------------------------------------------------- row 6: timeouts


def test_row6_socket_timeout_is_deadline_exceeded() -> None:
    with tcp_pair() as (ours, _peer):
        ours.settimeout(0.01)
        exc = caught(lambda: ours.recv(10))
    assert type(exc) is TimeoutError  # socket.timeout is TimeoutError
    check(exc, DE, rule="timeout", error_type="TimeoutError")


def test_row6_timeout_with_etimedout_is_the_peer_gone() -> None:
    # Constructed: ETIMEDOUT needs the kernel to give up retransmitting, which
    # loopback cannot provoke without root and packet filters.
    exc = OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
    assert type(exc) is TimeoutError  # OSError maps ETIMEDOUT to TimeoutError
    check(exc, CG, rule="peer_timed_out")
    assert classify(ConnectionError("x")).reason is WF  # not every OSError is a disconnect


def test_row6_framework_timeout_classes_not_raised_on_loopback() -> None:
    # Constructed: a connect timeout cannot happen on loopback, and sse-starlette's
    # send timeout needs a client that stops reading mid-event.
    import aiohttp
    from sse_starlette.sse import SendTimeoutError

    for exc in (
        aiohttp.ConnectionTimeoutError("connect"),
        aiohttp.ServerTimeoutError("server"),
        SendTimeoutError(),
    ):
        check(exc, DE)
    assert classify(aiohttp.ConnectionTimeoutError()).error_type == (
        "aiohttp.client_exceptions.ConnectionTimeoutError"
    )


# --------------------------------------------------------------------------- rows 7-10: peer gone


def test_row8_broken_pipe_from_a_socketpair_whose_peer_closed() -> None:
    ours, peer = socket.socketpair()
    with ours:
        peer.close()
        exc = caught(lambda: ours.send(b"x"))
    assert type(exc) is BrokenPipeError
    check(exc, CG, rule="connection_broken", error_type="BrokenPipeError")


def test_row8_connection_reset_from_so_linger_0() -> None:
    with tcp_pair() as (ours, peer):
        linger0(peer)
        peer.close()
        peer_gone(ours)
        exc = caught(lambda: ours.recv(10))
    assert type(exc) is ConnectionResetError
    check(exc, CG, rule="connection_broken", error_type="ConnectionResetError")


def test_row8_write_to_a_reset_peer() -> None:
    with tcp_pair() as (ours, peer):
        linger0(peer)
        peer.close()
        peer_gone(ours)
        exc = caught(lambda: send_until_error(ours))
    assert type(exc) in (ConnectionResetError, BrokenPipeError)
    check(exc, CG, rule="connection_broken")


def test_row8_aborted_and_eshutdown() -> None:
    # Constructed: ECONNABORTED/ESHUTDOWN do not occur on a Linux loopback socket;
    # OSError() maps the errno to the same subclass the kernel's error would give.
    aborted = OSError(errno.ECONNABORTED, "aborted")
    shutdown = OSError(errno.ESHUTDOWN, "shut down")
    assert type(aborted) is ConnectionAbortedError
    assert type(shutdown) is BrokenPipeError
    check(aborted, CG, rule="connection_broken")
    check(shutdown, CG, rule="connection_broken")


def test_row9_enotconn_after_the_peer_reset() -> None:
    with tcp_pair() as (ours, peer):
        linger0(peer)
        peer.close()
        peer_gone(ours)
        exc = caught(lambda: ours.shutdown(socket.SHUT_RDWR))
    assert type(exc) is OSError
    assert exc.errno == errno.ENOTCONN  # type: ignore[attr-defined]
    check(exc, CG, rule="not_connected", error_type="OSError")
    # Constructed: ENETRESET and Windows' WSAENOTCONN cannot be provoked here.
    check(OSError(errno.ENETRESET, "reset"), CG, rule="not_connected")
    check(OSError(10057, "WSAENOTCONN"), CG, rule="not_connected")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts around a self-signed certificate made with openssl."""
    openssl = require_tool("openssl")
    d: Path = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    client = ssl.create_default_context(cafile=d / "cert.pem")
    return server, client


@contextlib.contextmanager
def tls_pair(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> Iterator[tuple[ssl.SSLSocket, ssl.SSLSocket]]:
    """(server side, client side) of a real TLS connection over loopback TCP."""
    server_ctx, client_ctx = tls
    with socket.create_server(("127.0.0.1", 0)) as ls:
        done: list[ssl.SSLSocket] = []

        def accept() -> None:
            conn, _ = ls.accept()
            conn.settimeout(5)
            done.append(server_ctx.wrap_socket(conn, server_side=True))

        t = threading.Thread(target=accept)
        t.start()
        raw = socket.create_connection(ls.getsockname(), timeout=5)
        client = client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        t.join(5)
    with done[0] as server, client:
        yield server, client


@pytest.mark.parametrize("leave", ["fin", "rst"])
def test_row7_tls_sendall_to_a_departed_client_is_ssl_eof(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], leave: str
) -> None:
    with tls_pair(tls) as (server, client):
        if leave == "rst":
            linger0(client)
        client.close()  # no close_notify: the client just left
        peer_gone(server)
        exc = caught(lambda: send_until_error(server))
    assert type(exc) is ssl.SSLEOFError
    assert not isinstance(exc, ConnectionError)
    check(exc, CG, rule="disconnect_class", error_type="ssl.SSLEOFError")


def test_row7_ssl_zero_return_after_both_close_notifies(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    # Real OpenSSL over memory BIOs: the server sent close_notify, then got the client's.
    server_ctx, client_ctx = tls
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")

    def pump() -> None:
        while (a := c_out.read()) or (b := s_out.read()):
            if a:
                s_in.write(a)
            else:
                c_in.write(b)

    def step(fn: Callable[[], object]) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            fn()
        pump()

    for _ in range(5):
        step(client.do_handshake)
        step(server.do_handshake)
    step(server.unwrap)
    step(client.unwrap)
    exc = caught(lambda: server.read(10))
    assert type(exc) is ssl.SSLZeroReturnError
    check(exc, CG, rule="disconnect_class", error_type="ssl.SSLZeroReturnError")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_row7_11_anyio_broken_resource_over_a_reset_tcp_stream(backend: str) -> None:
    import anyio

    seen: list[BaseException] = []

    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as ls:
            stream = await anyio.connect_tcp("127.0.0.1", ls.getsockname()[1])
            peer, _ = ls.accept()
        linger0(peer)
        peer.close()
        await anyio.sleep(0.05)
        async with stream:
            seen.append(await acaught(send_all(stream)))
        seen.append(await acaught(stream.send(b"x")))  # our own closed stream

        with socket.create_server(("127.0.0.1", 0)) as ls:
            stream = await anyio.connect_tcp("127.0.0.1", ls.getsockname()[1])
            peer, _ = ls.accept()
        peer.close()
        async with stream:
            seen.append(await acaught(stream.receive()))

    async def send_all(stream: Any) -> None:
        for _ in range(1000):
            await stream.send(b"x" * 65536)

    anyio.run(main, backend=backend)
    broken, closed, eof = seen
    assert type(broken) is anyio.BrokenResourceError
    assert isinstance(broken.__cause__, ConnectionResetError | BrokenPipeError)
    check(broken, CG, rule="disconnect_class", error_type="anyio.BrokenResourceError")
    # without the class rule, the OSError in __cause__ decides (row 11)
    no_class = Policy(rules=[r for r in R.DEFAULT if r is not R.DISCONNECT_CLASS])
    out = classify(broken, policy=no_class)
    assert (out.reason, out.rule) == (CG, "connection_broken_in_chain")
    assert type(closed) is anyio.ClosedResourceError
    check(closed, WF, rule="closed_own_resource", error_type="anyio.ClosedResourceError")
    assert type(eof) is anyio.EndOfStream
    check(eof, CG, rule="disconnect_class", error_type="anyio.EndOfStream")


def test_row7_12_trio_broken_and_closed_resource() -> None:
    import trio

    seen: list[BaseException] = []

    async def main() -> None:
        with socket.create_server(("127.0.0.1", 0)) as ls:
            stream = await trio.open_tcp_stream("127.0.0.1", ls.getsockname()[1])
            peer, _ = ls.accept()
        linger0(peer)
        peer.close()
        await trio.sleep(0.05)

        async def send_all() -> None:
            for _ in range(1000):
                await stream.send_all(b"x" * 65536)

        seen.append(await acaught(send_all()))
        await stream.aclose()
        seen.append(await acaught(stream.send_all(b"x")))

    trio.run(main)
    broken, closed = seen
    assert type(broken) is trio.BrokenResourceError
    check(broken, CG, rule="disconnect_class", error_type="trio.BrokenResourceError")
    assert type(closed) is trio.ClosedResourceError
    check(closed, WF, rule="closed_own_resource", error_type="trio.ClosedResourceError")
    opt_in = Policy(before=[R.CLOSED_RESOURCE_IS_CLIENT_GONE])
    assert classify(closed, policy=opt_in).reason is CG


async def test_row7_asyncio_incomplete_read_from_the_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as ls:
        reader, writer = await asyncio.open_connection(*ls.getsockname())
        peer, _ = ls.accept()
    peer.sendall(b"abc")
    peer.close()
    exc = await acaught(reader.readexactly(10))
    writer.close()
    assert type(exc) is asyncio.IncompleteReadError
    check(exc, CG, rule="disconnect_class", error_type="asyncio.exceptions.IncompleteReadError")


def test_row7_aiohttp_server_write_to_a_departed_client() -> None:
    from aiohttp import web

    async def main() -> BaseException:
        got: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            await resp.prepare(request)
            try:
                for _ in range(1000):
                    await resp.write(b"x" * 65536)
                    await asyncio.sleep(0.005)
            except BaseException as e:
                if not got.done():
                    got.set_result(e)
                raise
            return resp

        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.SockSite(runner, socket.create_server(("127.0.0.1", 0)))
        await site.start()
        try:
            port = runner.addresses[0][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.read(1000)
            linger0(writer.transport.get_extra_info("socket"))
            writer.close()
            return await asyncio.wait_for(got, 5)
        finally:
            await runner.cleanup()

    exc = asyncio.run(main())
    assert type(exc).__name__ == "ClientConnectionResetError"
    assert isinstance(exc, ConnectionResetError)  # and an aiohttp.ClientError: rule 7 wins
    check(exc, CG, rule="disconnect_class")


@pytest.fixture(scope="module")
def asgi_server() -> Iterator[tuple[int, dict[str, list[BaseException]], threading.Event]]:
    """uvicorn on loopback serving a Starlette app plus a raw ASGI websocket."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute

    caught_: dict[str, list[BaseException]] = {}
    seen = threading.Event()

    def keep(key: str, e: BaseException) -> None:
        caught_.setdefault(key, []).append(e)
        seen.set()

    async def body(request: Any) -> Any:
        try:
            await request.body()
        except BaseException as e:
            keep("body", e)
            raise
        return PlainTextResponse("ok")

    async def ws(websocket: Any) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except BaseException as e:
            keep("ws", e)
            raise

    async def late_ws(websocket: Any) -> None:
        await websocket.accept()
        assert (await websocket.receive())["type"] == "websocket.disconnect"
        try:
            await websocket.send_text("late")
        except BaseException as e:
            keep("late", e)

    async def raw_ws(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "late"})
        except BaseException as e:
            keep("raw", e)

    starlette_app = Starlette(
        routes=[
            Route("/body", body, methods=["POST"]),
            WebSocketRoute("/ws", ws),
            WebSocketRoute("/late", late_ws),
        ]
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # /raw bypasses Starlette, which would turn uvicorn's error into WebSocketDisconnect
        handler = raw_ws if scope.get("path") == "/raw" else starlette_app
        await handler(scope, receive, send)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield port, caught_, seen
    finally:
        server.should_exit = True
        t.join(10)


def test_row7_starlette_client_disconnect_while_reading_the_body(asgi_server: Any) -> None:
    port, got, seen = asgi_server
    seen.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.05)
    assert seen.wait(5)
    exc = got["body"][-1]
    assert type(exc).__name__ == "ClientDisconnect"
    check(exc, CG, rule="disconnect_class", error_type="starlette.requests.ClientDisconnect")


@pytest.mark.parametrize(("how", "code", "reason"), [
    ("close", 1000, CG), ("close", 1001, CG), ("abort", 1005, CG), ("close", 1011, WF),
])  # fmt: skip
def test_row7_starlette_websocket_disconnect_codes(
    asgi_server: Any, how: str, code: int, reason: Reason
) -> None:
    from websockets.sync.client import connect

    port, got, seen = asgi_server
    seen.clear()
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5) as ws:
        if how == "close":
            ws.close(code=code)
        else:  # the client vanishes without a close frame
            linger0(ws.socket)
            ws.socket.close()
    assert seen.wait(5)
    exc = got["ws"][-1]
    assert type(exc).__name__ == "WebSocketDisconnect"
    assert exc.code == code  # type: ignore[attr-defined]
    check(exc, reason, error_type="starlette.websockets.WebSocketDisconnect")


def _left_at_once(asgi_server: Any, path: str) -> BaseException:
    """What the server's websocket handler at *path* raised when the client left at once."""
    from websockets.sync.client import connect

    port, got, seen = asgi_server
    seen.clear()
    with connect(f"ws://127.0.0.1:{port}/{path}", open_timeout=5):
        pass
    assert seen.wait(5)
    exc: BaseException = got[path][-1]
    return exc


def test_row7_uvicorn_client_disconnected_on_a_late_websocket_send(asgi_server: Any) -> None:
    exc = _left_at_once(asgi_server, "raw")
    assert type(exc).__name__ == "ClientDisconnected"
    check(exc, CG, rule="disconnect_class", error_type="uvicorn.protocols.utils.ClientDisconnected")


def test_row7_starlette_late_websocket_send_is_code_1006(asgi_server: Any) -> None:
    exc = _left_at_once(asgi_server, "late")
    assert type(exc).__name__ == "WebSocketDisconnect"
    assert exc.code == 1006  # type: ignore[attr-defined]
    assert type(exc.__context__).__name__ == "ClientDisconnected"
    check(exc, CG, rule="disconnect_class")


def test_row7_werkzeug_client_disconnected_on_a_short_body() -> None:
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    got: list[BaseException] = []

    @Request.application  # type: ignore[arg-type]
    def app(request: Request) -> Response:
        try:
            request.get_data()
        except BaseException as e:
            got.append(e)
            raise
        return Response("ok")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as c:
            c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            c.shutdown(socket.SHUT_WR)
            c.recv(1000)  # werkzeug answers 400 once the body came up short
    finally:
        server.shutdown()
        t.join(5)
    assert type(got[0]).__name__ == "ClientDisconnected"
    check(got[0], CG, rule="disconnect_class", error_type="werkzeug.exceptions.ClientDisconnected")


def test_row10_uvloop_write_after_the_peer_reset() -> None:
    import uvloop

    async def main() -> BaseException:
        got: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            await asyncio.sleep(0.1)
            try:
                for _ in range(1000):
                    writer.write(b"x" * 65536)
                    await writer.drain()
                    await asyncio.sleep(0.005)
            except BaseException as e:
                got.set_result(e)

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        async with server:
            peer = socket.create_connection(server.sockets[0].getsockname()[:2], timeout=5)
            peer.sendall(b"hi")
            linger0(peer)
            peer.close()
            return await asyncio.wait_for(got, 5)

    exc = uvloop.run(main())
    assert type(exc) is RuntimeError
    assert "the handler is closed" in str(exc)
    check(exc, CG, rule="uvloop_closed", error_type="RuntimeError")
    check(RuntimeError("some other runtime error"), WF, rule="default")


# --------------------------------------------------------------------------- row 11: chains


def test_row11_chain_holding_a_broken_connection() -> None:
    ours, peer = socket.socketpair()
    peer.close()
    with ours:
        pipe = caught(lambda: ours.send(b"x"))

    def explicit() -> None:
        raise RuntimeError("write failed") from pipe

    def implicit() -> None:
        try:
            raise pipe
        except BrokenPipeError:
            raise KeyError("while handling") from None  # suppressed, but __context__ stays

    for exc in (caught(explicit), caught(implicit)):
        out = check(exc, CG, rule="connection_broken_in_chain")
        assert out.error_type == "BrokenPipeError"  # the exception that decided


def test_row11_deep_and_cyclic_chains() -> None:
    reset = OSError(errno.ECONNRESET, "reset")
    top: BaseException = reset
    for i in range(20):
        nxt = KeyError(i)
        nxt.__cause__ = top
        top = nxt
    check(top, CG, rule="connection_broken_in_chain")
    a, b = KeyError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    check(a, WF, rule="default")


# --------------------------------------------------------------------------- rows 12-14


def test_row12_our_own_closed_objects(tmp_path: Path) -> None:
    f = open(tmp_path / "out", "w")  # noqa: SIM115
    f.close()
    closed_file = caught(lambda: f.write("x"))
    assert type(closed_file) is ValueError
    check(closed_file, WF, rule="closed_own_resource", error_type="ValueError")
    check(ValueError("bad value"), WF, rule="default")

    fd = os.open(tmp_path / "out", os.O_WRONLY)
    os.close(fd)
    bad_fd = caught(lambda: os.write(fd, b"x"))
    assert bad_fd.errno == errno.EBADF  # type: ignore[attr-defined]
    check(bad_fd, WF, rule="closed_own_resource", error_type="OSError")


def test_row13_system_exit_and_keyboard_interrupt_are_not_client_gone() -> None:
    exit_ = caught(lambda: sys.exit(1))
    assert type(exit_) is SystemExit
    check(exit_, WF, rule="interrupt", error_type="SystemExit")

    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupt = caught(lambda: signal.raise_signal(signal.SIGINT))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert type(interrupt) is KeyboardInterrupt
    check(interrupt, WF, rule="interrupt", error_type="KeyboardInterrupt")


def test_row14_enospc_from_dev_full() -> None:
    if not os.path.exists("/dev/full"):
        pytest.fail("/dev/full is missing: this test needs Linux")
    with open("/dev/full", "wb", buffering=0) as full:
        exc = caught(lambda: full.write(b"x"))
    assert exc.errno == errno.ENOSPC  # type: ignore[attr-defined]
    check(exc, WF, rule="default", error_type="OSError")


def test_row14_anything_else() -> None:
    import h11

    conn = h11.Connection(h11.SERVER)
    protocol = caught(lambda: conn.send(h11.Data(data=b"x")))  # data before a response
    assert type(protocol) is h11.LocalProtocolError
    check(protocol, WF, rule="protocol_error", error_type="h11.LocalProtocolError")
    check(caught(lambda: {}["missing"]), WF, rule="default", error_type="KeyError")
    assert classify(KeyError(), policy=Policy(default="client_gone")).reason is CG


def test_ok_is_none() -> None:
    out = classify(None)
    assert (out.reason, out.error_type, out.is_error) == (Reason.OK, None, False)


# --------------------------------------------------------------------------- groups


async def test_groups_most_severe_leaf_wins_in_a_real_task_group() -> None:
    # Each task fails in its first step, so all fail before the group cancels any.
    async def pipe() -> None:
        ours, peer = socket.socketpair()
        peer.close()
        with ours:
            ours.send(b"x")

    async def slow() -> None:
        ours, peer = socket.socketpair()
        with ours, peer:
            ours.settimeout(0.01)
            ours.recv(1)

    async def fail() -> None:
        raise KeyError("bug")

    async def group(*coros: Callable[[], Any]) -> BaseException:
        async def run() -> None:
            async with asyncio.TaskGroup() as tg:
                for c in coros:
                    tg.create_task(c())

        return await acaught(run())

    only_gone = await group(pipe, pipe)
    assert isinstance(only_gone, ExceptionGroup)
    check(only_gone, CG, error_type="BrokenPipeError")
    gone_and_slow = await group(pipe, slow)
    check(gone_and_slow, DE, error_type="TimeoutError")
    all_three = await group(pipe, slow, fail)
    check(all_three, WF, error_type="KeyError")


def test_groups_nested_and_through_chains() -> None:
    inner = ExceptionGroup("inner", [BrokenPipeError(), TimeoutError()])
    outer = BaseExceptionGroup("outer", [ConnectionResetError(), inner, GeneratorExit()])
    check(outer, DE, error_type="TimeoutError")
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = ExceptionGroup("g", [ConnectionResetError()])
    check(wrapped, CG, rule="connection_broken_in_chain")


def test_groups_from_a_trio_nursery() -> None:
    import trio

    async def pipe() -> None:
        ours, peer = socket.socketpair()
        peer.close()
        with ours:
            ours.send(b"x")

    async def main() -> None:
        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                n.start_soon(pipe)
                n.start_soon(trio.sleep, 10)

    exc = caught(lambda: trio.run(main))
    assert isinstance(exc, ExceptionGroup)
    check(exc, CG, error_type="BrokenPipeError")
