"""The aiohttp matrix: a real aiohttp server on loopback, with ``handler_cancellation``
off (the default: the write raises ``ClientConnectionResetError``) and on (the
handler is cancelled), counts scraped from the server's ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import errclass
from errclass.integrations import asgi
from errclass.integrations.aiohttp import middleware, setup
from tests.support import (
    ROOT,
    async_wait_until,
    counted_streams,
    fin_close,
    free_port,
    http_get,
    leave_after,
    python_argv,
    read_stream,
    resetting_upstream,
    rst_close,
    running,
    stall_reading,
    stop,
)

STREAMS = 3
APP = "tests.servers.aiohttp_app"
DEADLINE = 0.5
STACKS = ["aiohttp", "aiohttp-handler-cancellation"]


def server_argv(stack: str, port: int) -> list[str]:
    # -c, not -m: handlers keep their import name (tests.servers.aiohttp_app.*).
    flag = ", '--handler-cancellation'" if stack.endswith("cancellation") else ""
    code = (
        "import sys; from tests.servers.aiohttp_app import main; "
        f"sys.argv[1:] = ['--port', '{port}'{flag}]; main()"
    )
    return python_argv("-c", code)


@pytest.fixture(scope="module", params=STACKS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    stack, port = request.param, free_port()
    log = tmp_path_factory.mktemp(stack) / "server.log"
    env = {"MATRIX_DEADLINE": str(DEADLINE)}
    with running(server_argv(stack, port), port, env=env, cwd=ROOT, log=log):
        yield stack, port


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with resetting_upstream() as port:
        yield port


def stall(port: int, path: str) -> None:
    stall_reading(port, path, DEADLINE + 1.0)


Client = Callable[[int, str], None]

# scenario -> (path, client, handler, expected reason); handler = started label
SCENARIOS: dict[str, tuple[str, Client, str, str]] = {
    "completes": ("/completes", read_stream, "completes", "ok"),
    "fin_mid_stream": ("/fin", leave_after(fin_close, 3000), "fin", "client_gone"),
    "rst_mid_stream": ("/rst", leave_after(rst_close, 3000), "rst", "client_gone"),
    "fast_producer_client_leaves": (
        "/fast", leave_after(fin_close, 200_000), "fast", "client_gone",
    ),
    "handler_swallows_the_reset": (
        "/swallow", leave_after(fin_close, 3000), "swallow", "client_gone",
    ),
    "client_stalls_past_deadline": ("/stalled", stall, "stalled", "deadline_exceeded"),
    "write_fault_dev_full": ("/devfull", read_stream, "devfull", "write_failed"),
    "upstream_resets": ("/upstream?port={upstream}", read_stream, "upstream", "write_failed"),
}  # fmt: skip


async def test_a_raised_http_response_is_ok_and_an_error_is_not() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    events: list[errclass.Event] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/elsewhere")

    async def broken(request: web.Request) -> web.StreamResponse:
        raise KeyError("bug")

    app = web.Application()
    setup(app, events.append, logger=None)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/redirect", allow_redirects=False)).status == 302
        assert (await client.get("/broken")).status == 500
    assert [(e.producer.rsplit(".", 1)[-1], e.reason) for e in events] == [
        ("redirect", "ok"),
        ("broken", "write_failed"),
    ]


@asynccontextmanager
async def serving(
    handler: Any, events: list[errclass.Event], handler_cancellation: bool = False
) -> AsyncIterator[int]:
    """A real aiohttp server on loopback, as users run it (``handler_cancellation``
    off by default: aiohttp's TestServer turns it on), with the middleware
    recording to *events* as ``request`` and *handler* at ``/``; yields its port."""
    from aiohttp import web

    app = web.Application()
    setup(app, events.append, name="request", logger=None)
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def get(port: int) -> tuple[int, bytes]:
    """``GET /`` with aiohttp's client: the status and the whole body."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


def endings(events: list[errclass.Event]) -> list[tuple[str, str, str]]:
    return [(e.producer, e.reason, e.outcome.rule) for e in events]


class Bodies:
    """The ``errclass.stream()`` bodies a handler makes, recorded to ``events`` as
    ``body`` and kept alive (refcounting cannot close them: only the middleware
    may). ``finished`` counts the generators whose ``finally`` ran; with
    *failing_close* it raises there."""

    def __init__(self, size: int = 1, delay: float = 0.0, failing_close: bool = False) -> None:
        self.events: list[errclass.Event] = []
        self.kept: list[AsyncGenerator[bytes, Any]] = []
        self.finished = 0
        self._size, self._delay, self._failing = size, delay, failing_close

    async def _produce(self) -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * self._size
                if self._delay:
                    await asyncio.sleep(self._delay)
        finally:
            self.finished += 1
            if self._failing:
                raise RuntimeError("cleanup failed")

    def stream(self) -> AsyncGenerator[bytes, Any]:
        body = errclass.stream(self._produce(), self.events.append, name="body", logger=None)
        self.kept.append(body)
        return body


#: The request ended well; the body it left at ``yield`` was closed and recorded then.
ENDED_WELL = [("request", "ok", "ok"), ("body", "client_gone", "generator_exit")]


async def served_once(handler: Any, bodies: Bodies) -> tuple[Any, ...]:
    """One ``GET /``: what the client got, then what was recorded and how many
    bodies were closed by then (a plain response is sent after the middleware
    returned: the request's end is over when the client has it)."""
    async with serving(handler, bodies.events) as port:
        got = await get(port)
        return got, endings(bodies.events), bodies.finished


async def test_a_stream_the_handler_stopped_is_closed_and_recorded_before_the_response() -> None:
    """A handler that stops iterating an ``errclass.stream()``: the middleware
    closes it as the request ends, and records it with what ended the request
    (it ended well: the policy's ``generator_exit``)."""
    from aiohttp import web

    bodies = Bodies()

    async def handler(request: web.Request) -> web.StreamResponse:
        chunks = []
        async for chunk in bodies.stream():
            chunks.append(chunk)
            if len(chunks) == 3:
                break  # an async generator left at yield: not closed by the break
        return web.Response(body=b"".join(chunks))

    assert await served_once(handler, bodies) == ((200, b"xxx"), ENDED_WELL, 1)


async def test_an_adopted_generator_the_handler_stopped_is_closed_before_the_response() -> None:
    """``adopt()`` under aiohttp: a plain async generator the handler left at ``yield``
    is closed by the middleware as the request ends, before the client has the
    response (without it, only the garbage collector would close it)."""
    from aiohttp import web

    from errclass.integrations import aiohttp as errclass_aiohttp

    bodies = Bodies()
    closed: list[bool] = []
    kept: list[AsyncGenerator[bytes, None]] = []

    async def produce() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"y"
        finally:
            closed.append(True)

    async def handler(request: web.Request) -> web.StreamResponse:
        gen = errclass_aiohttp.adopt(produce())
        kept.append(gen)  # alive: refcounting cannot close it
        chunks = [await anext(gen), await anext(gen)]
        return web.Response(body=b"".join(chunks))

    got, recorded, _ = await served_once(handler, bodies)
    assert (got, recorded, closed) == ((200, b"yy"), [("request", "ok", "ok")], [True])
    assert errclass_aiohttp.adopt is asgi.adopt  # one function, exported by both


async def test_a_tracked_generator_left_suspended_is_recorded_once_as_the_request_ends() -> None:
    from aiohttp import web

    events: list[errclass.Event] = []
    kept: list[AsyncGenerator[bytes, None]] = []

    @errclass.track(events.append, name="tracked", logger=None)
    async def produce() -> AsyncGenerator[bytes, None]:
        while True:
            yield b"x"

    async def handler(request: web.Request) -> web.StreamResponse:
        kept.append(produce())  # alive: refcounting cannot close it
        return web.Response(body=await anext(kept[0]))

    async with serving(handler, events) as port:
        assert await get(port) == (200, b"x")
        recorded = endings(events)
    assert recorded == [
        ("request", "ok", "ok"),
        ("tracked", "client_gone", "generator_exit"),
    ]
    await kept[0].aclose()  # its own ending comes later: not recorded again
    assert endings(events) == recorded


async def test_a_stream_parked_when_the_client_left_is_client_gone_once() -> None:
    """The client leaves mid-stream; the handler swallows the failed write and
    returns, leaving its stream at ``yield``: the stream is ``client_gone`` (what
    the server saw), recorded and closed as the request ends, exactly once."""
    from aiohttp import web

    bodies = Bodies(size=1000, delay=0.005)

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            async for chunk in bodies.stream():
                await resp.write(chunk)
        except ConnectionResetError:
            pass  # aiohttp's ClientConnectionResetError: the handler goes on as if all went well
        return resp

    async with serving(handler, bodies.events) as port:
        await asyncio.to_thread(leave_after(rst_close, 3000), port, "/")
        await async_wait_until(
            lambda: len(bodies.events) == 2 and bodies.finished,
            timeout=5,
            what=lambda: f"{endings(bodies.events)}, finished {bodies.finished}",
        )
    await bodies.kept[0].aclose()  # already closed: nothing more to record
    assert endings(bodies.events) == [
        ("request", "client_gone", "transport_disconnect"),
        ("body", "client_gone", "transport_disconnect"),
    ]
    assert bodies.finished == 1


async def test_with_handler_cancellation_a_parked_stream_ends_as_its_request_did() -> None:
    """``handler_cancellation=True``: the client leaves while the handler writes,
    its stream parked at ``yield`` (a producer that never awaits). Whatever ended
    the request (the failed write, or aiohttp's cancellation, whichever lands
    first) ends the stream too: the same exception, recorded once."""
    from aiohttp import web

    bodies = Bodies(size=65536)

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        async for chunk in bodies.stream():
            await resp.write(chunk)  # the only await: where the request ends
        return resp

    async with serving(handler, bodies.events, handler_cancellation=True) as port:
        await asyncio.to_thread(leave_after(rst_close, 3000), port, "/")
        await async_wait_until(
            lambda: len(bodies.events) == 2 and bodies.finished,
            timeout=5,
            what=lambda: f"{endings(bodies.events)}, finished {bodies.finished}",
        )
    (request, body), (ended, parked) = endings(bodies.events), bodies.events
    assert (request[:2], body[0], body[1:]) == (("request", "client_gone"), "body", request[1:])
    assert parked.exception is ended.exception
    assert bodies.finished == 1


async def test_a_producer_whose_close_fails_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closing an adopted producer raises: a warning, not an error into aiohttp,
    and the request's outcome and response are what the handler made."""
    from aiohttp import web

    bodies = Bodies(failing_close=True)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=await anext(bodies.stream()))

    with caplog.at_level(logging.WARNING):
        assert await served_once(handler, bodies) == ((200, b"x"), ENDED_WELL, 1)
    warned = [r for r in caplog.records if r.name == "errclass" and r.exc_info]
    assert [r.getMessage() for r in warned] == [
        "closing a producer at the end of its request raised"
    ]
    assert isinstance(warned[0].exc_info[1], RuntimeError)  # type: ignore[index]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], "nothing was raised into aiohttp"


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match=r"takes an aiohttp\.web\.Application"):
        setup(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name= must be a string"):
        middleware(name=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown= must be one of"):
        middleware(shutdown="gone")


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matrix(server: tuple[str, int], upstream: int, scenario: str) -> None:
    stack, port = server
    path, client, handler, expected = SCENARIOS[scenario]
    path = path.format(upstream=upstream)
    deltas, started = counted_streams(
        f"http://127.0.0.1:{port}/metrics",
        f"{APP}.{handler}",
        handler,
        STREAMS,
        lambda: client(port, path),
    )
    assert started == STREAMS, f"{stack}: {started} streams started"
    assert deltas == {expected: STREAMS}, f"{stack} {scenario}: {deltas}"


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_server_shutdown_is_not_client_gone(stack: str, tmp_path: Path) -> None:
    """aiohttp cancels a handler still running when ``shutdown_timeout`` (1 s)
    runs out, with the connection still open: the server's deadline, not a
    client leaving."""
    port, events = free_port(), tmp_path / "events.jsonl"
    env = {"MATRIX_EVENTS": str(events)}
    with running(server_argv(stack, port), port, env=env, cwd=ROOT, log=tmp_path / "log") as proc:
        sock: socket.socket = http_get(port, "/shutdown", read=100)
        t0 = time.monotonic()
        stop(proc, timeout=15)
        elapsed = time.monotonic() - t0
        sock.close()
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert recorded == [{"producer": f"{APP}.shutdown", "reason": "deadline_exceeded"}]
    assert elapsed < 10, "the server should have cancelled the stream after its 1 s grace"
