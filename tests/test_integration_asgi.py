"""ErrclassMiddleware: its ASGI contract in-process, then the matrix on real servers.

The matrix: one server process per stack (uvicorn h11, uvicorn httptools,
hypercorn on asyncio and on trio) serves ``tests/servers/asgi_app.py`` behind
``ErrclassMiddleware`` (Starlette and sse-starlette endpoints); every scenario
drives a few streams and reads ``errclass_outcomes_total`` from the server's
``/metrics``: the expected reason once per stream, and the outcomes summing to
the streams started.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import errclass
from errclass import stream as adopted_stream
from errclass.integrations.asgi import ErrclassMiddleware
from tests.support import (
    ROOT,
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

STREAMS = 3  # per scenario and stack
APP = "tests.servers.asgi_app"
DEADLINE = 0.5


def server_argv(stack: str, port: int) -> list[str]:
    if stack.startswith("uvicorn"):
        http = stack.split("-")[1]
        return python_argv(
            "-m", "uvicorn", f"{APP}:app", "--host", "127.0.0.1", "--port", str(port),
            "--http", http, "--log-level", "warning", "--timeout-graceful-shutdown", "1",
        )  # fmt: skip
    worker = ["-k", "trio"] if stack == "hypercorn-trio" else []
    return python_argv(
        "-m", "hypercorn", *worker, f"{APP}:app", "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "1",
    )  # fmt: skip


STACKS = ["uvicorn-h11", "uvicorn-httptools", "hypercorn", "hypercorn-trio"]


# -- the contract, in-process (an ASGI server is two callables) ---------------------


class Server:
    """Scripted server side of one request: *messages* for ``receive`` (then it
    blocks until ``disconnect()``), and everything the app sent."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for m in messages:
            self.inbox.put_nowait(m)
        self.sent: list[dict[str, Any]] = []
        self.reads = 0

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message.get("type") == "http.response.body" and not message.get("more_body"):
            self.inbox.put_nowait({"type": "http.disconnect"})  # as uvicorn does

    def disconnect(self) -> None:
        self.inbox.put_nowait({"type": "http.disconnect"})


HTTP = {"type": "http", "path": "/", "method": "GET", "headers": []}
GET = {"type": "http.request", "body": b"", "more_body": False}
START = {"type": "http.response.start", "status": 200, "headers": []}


def body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def test_completed_response_is_ok_though_disconnect_follows() -> None:
    events: list[errclass.Event] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", True))
        await asyncio.sleep(0.01)
        await send(body(b"", False))

    server = Server(GET)
    await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
    assert [e.reason for e in events] == ["ok"]
    assert server.sent == [START, body(b"a", True), body(b"", False)]


async def test_client_gone_although_app_returns_normally() -> None:
    """Rule 15: the app never calls receive() and completes; the server had
    already said http.disconnect."""
    events: list[errclass.Event] = []
    server = Server(GET)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        server.disconnect()
        await asyncio.sleep(0.01)  # the middleware's listener reads it meanwhile
        await send(body(b"late", False))  # a no-op on a real server

    await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
    assert [(e.reason, e.outcome.rule) for e in events] == [("client_gone", "transport_disconnect")]


async def test_returning_without_finishing_the_response_is_write_failed() -> None:
    events: list[errclass.Event] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", True))

    server = Server(GET)
    await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
    assert [(e.reason, e.outcome.rule) for e in events] == [("write_failed", "response_incomplete")]


async def test_exception_is_the_same_object_and_classified() -> None:
    events: list[errclass.Event] = []
    error = KeyError("x")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        raise error

    server = Server(GET)
    with pytest.raises(KeyError) as raised:
        await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
    assert raised.value is error
    assert [e.reason for e in events] == ["write_failed"]


async def test_cancellation_without_disconnect_is_the_servers() -> None:
    """A cancelled request that saw no http.disconnect (a server's graceful-shutdown
    timeout) is recorded as ``shutdown=``, and the same CancelledError propagates."""
    events: list[errclass.Event] = []
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        started.set()
        await asyncio.sleep(10)

    server = Server(GET)
    mw = ErrclassMiddleware(app, events.append, name="p")
    task = asyncio.ensure_future(mw(HTTP, server.receive, server.send))
    await started.wait()
    task.cancel("shutdown")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(e.reason, e.outcome.rule) for e in events] == [
        ("deadline_exceeded", "server_cancelled")
    ]


async def test_request_body_reaches_the_app_in_order_one_chunk_ahead() -> None:
    """Once the response started, the listener reads for the app, never more than one
    body chunk ahead of it, and hands it every message in order."""
    chunks = [{"type": "http.request", "body": b"%d" % i, "more_body": i < 3} for i in range(4)]
    server = Server(*chunks)
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await asyncio.sleep(0.01)
        assert server.reads == 1  # one chunk held for the app, no more
        while True:
            got.append(await receive())
            if not got[-1]["more_body"]:
                break
        await send(body(b"", False))

    await ErrclassMiddleware(app, name="p", logger=None)(HTTP, server.receive, server.send)
    assert got == chunks


async def test_inner_producer_that_completes_after_disconnect_is_client_gone() -> None:
    """With record=False only errclass.stream() records, and the middleware's
    signal turns its "completed" into client_gone."""
    events: list[errclass.Event] = []
    server = Server(GET)

    async def produce() -> Any:
        yield b"a"
        server.disconnect()
        await asyncio.sleep(0.01)
        yield b"b"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        async for chunk in errclass.stream(produce(), events.append, name="inner"):
            await send(body(chunk, True))
        await send(body(b"", False))

    await ErrclassMiddleware(app, record=False)(HTTP, server.receive, server.send)
    assert [(e.producer, e.reason) for e in events] == [("inner", "client_gone")]


async def test_adopted_producer_is_closed_before_the_request_ends() -> None:
    """A body iterator parked at ``yield`` when the app stops (Starlette cancelled
    at a blocked send) is closed by the middleware, not by the garbage collector."""
    events: list[errclass.Event] = []
    server = Server(GET)
    kept: list[Any] = []

    async def produce() -> Any:
        while True:
            yield b"x"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body_iter = adopted_stream(produce(), events.append, name="adopted")
        kept.append(body_iter)  # keep it alive: only the middleware may close it
        await send(START)
        await send(body(await body_iter.__anext__(), True))
        server.disconnect()
        await asyncio.sleep(0.01)

    await ErrclassMiddleware(app, record=False)(HTTP, server.receive, server.send)
    assert [(e.producer, e.reason) for e in events] == [("adopted", "client_gone")]


async def test_stream_outside_a_request_is_a_plain_named_stream() -> None:
    events: list[errclass.Event] = []

    async def produce() -> Any:
        yield b"a"

    chunks = [c async for c in adopted_stream(produce(), events.append)]
    assert chunks == [b"a"]
    assert [(e.producer, e.reason) for e in events] == [
        (f"{__name__}.test_stream_outside_a_request_is_a_plain_named_stream", "ok")
    ]


async def test_other_scopes_pass_through_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((receive, send))

    server = Server()
    events: list[errclass.Event] = []
    mw = ErrclassMiddleware(app, events.append)
    await mw({"type": "lifespan"}, server.receive, server.send)
    await mw({"type": "websocket"}, server.receive, server.send)
    assert seen == [(server.receive, server.send)] * 2
    assert events == []


async def test_endpoint_names_the_producer() -> None:
    async def endpoint() -> None: ...

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"x", more=False))

    events: list[errclass.Event] = []
    mw = ErrclassMiddleware(app, events.append, name=None, logger=None)
    for scope in ({**HTTP, "endpoint": endpoint}, dict(HTTP)):  # through __call__ itself
        server = Server(GET)
        await mw(scope, server.receive, server.send)
    name = events[0].producer
    assert name == f"{__name__}.test_endpoint_names_the_producer.<locals>.endpoint"
    assert events[1].producer.endswith("test_endpoint_names_the_producer.<locals>.app")


def test_endpoint_trackers_are_bounded() -> None:
    from errclass.integrations._endpoints import MAX_ENDPOINTS, Endpoints

    endpoints = Endpoints(lambda e: None, name=None, policy=None, logger=None, overflow="x.other")
    names = [endpoints.tracker(f"e{i}").producer for i in range(MAX_ENDPOINTS)]
    assert names == [f"e{i}" for i in range(MAX_ENDPOINTS)]
    assert endpoints.tracker("one too many").producer == "x.other"
    assert endpoints.tracker("e0") is endpoints.tracker("e0")  # known ones keep theirs
    assert endpoints.tracker("e0").producer == "e0"


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="wraps an ASGI application"):
        ErrclassMiddleware(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name= must be a string"):
        ErrclassMiddleware(Server().send, name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="record= must be True or False"):
        ErrclassMiddleware(Server().send, record="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown= must be one of"):
        ErrclassMiddleware(Server().send, shutdown="gone")


# -- the matrix --------------------------------------------------------------------


@pytest.fixture(scope="module", params=STACKS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    stack = request.param
    port = free_port()
    log = tmp_path_factory.mktemp(stack) / "server.log"
    env = {"MATRIX_DEADLINE": str(DEADLINE)}
    with running(server_argv(stack, port), port, env=env, cwd=ROOT, log=log):
        yield stack, port


def stall(port: int, path: str) -> None:
    stall_reading(port, path, DEADLINE + 1.0)


# scenario -> (path, client, endpoint, started label, expected reason)
SCENARIOS: dict[str, tuple[str, Callable[[int, str], None], str, str, str]] = {
    "completes": ("/completes", read_stream, "completes", "completes", "ok"),
    "fin_mid_stream": ("/fin", leave_after(fin_close, 3000), "fin", "fin", "client_gone"),
    "rst_mid_stream": ("/rst", leave_after(rst_close, 3000), "rst", "rst", "client_gone"),
    "fast_producer_client_leaves": (
        "/fast", leave_after(fin_close, 200_000), "fast", "fast", "client_gone",
    ),
    "client_stalls_past_deadline": ("/stalled", stall, "Stalled", "stalled", "deadline_exceeded"),
    "write_fault_dev_full": ("/devfull", read_stream, "devfull", "devfull", "write_failed"),
    "sse_completes": ("/sse_completes", read_stream, "sse_completes", "sse_completes", "ok"),
    "sse_client_leaves": (
        "/sse_leave", leave_after(fin_close, 30), "sse_leave", "sse_leave", "client_gone",
    ),
    "upstream_resets": (
        "/upstream?port={upstream}", read_stream, "upstream", "upstream", "write_failed",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with resetting_upstream() as port:
        yield port


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matrix(server: tuple[str, int], upstream: int, scenario: str) -> None:
    stack, port = server
    path, client, endpoint, label, expected = SCENARIOS[scenario]
    path = path.format(upstream=upstream)
    deltas, started = counted_streams(
        f"http://127.0.0.1:{port}/metrics",
        f"{APP}.{endpoint}",
        label,
        STREAMS,
        lambda: client(port, path),
    )
    assert started == STREAMS, f"{stack}: {started} streams started"
    assert deltas == {expected: STREAMS}, f"{stack} {scenario}: {deltas}"


@pytest.mark.slow
@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_server_shutdown_is_not_client_gone(server_name: str, tmp_path: Path) -> None:
    """A stream the server cancels when its graceful-shutdown timeout (1 s) runs out
    is recorded as the server's deadline, never as a client leaving.

    The server runs embedded (``python -m tests.servers.asgi_serve``): uvicorn's
    and hypercorn's own command lines end the process right after cancelling,
    before a cancelled request can record anything (see the README matrix)."""
    port, events = free_port(), tmp_path / "events.jsonl"
    argv = python_argv(
        "-m",
        "tests.servers.asgi_serve",
        "--server",
        server_name,
        "--port",
        str(port),
        "--grace",
        "1",
    )
    env = {"MATRIX_EVENTS": str(events)}
    with running(argv, port, env=env, cwd=ROOT, log=tmp_path / "log") as proc:
        sock = http_get(port, "/shutdown", read=100)
        t0 = time.monotonic()
        stop(proc, timeout=15)
        elapsed = time.monotonic() - t0
        sock.close()
    assert proc.returncode == 0, (tmp_path / "log").read_text()
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert recorded == [{"producer": f"{APP}.shutdown", "reason": "deadline_exceeded"}]
    assert elapsed < 10, "the server should have cancelled the stream after its 1 s grace"
