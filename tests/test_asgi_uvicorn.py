"""ErrclassMiddleware on uvicorn's own HTTP/1 protocols (h11, httptools): the path
that reads the client's state from uvicorn's request cycle.

Each test serves its application with a real ``uvicorn.Server`` in the test's
event loop, on a loopback port, and talks to it over a real socket. On this path
the application gets uvicorn's own ``receive`` (flow control is uvicorn's, no
listener task runs), and every guarantee of the general path holds: a producer
that completes after its client left is ``client_gone``, so is one whose last
message follows a failed write, a completed response is ``ok`` whatever the
connection does next, a request the server cancels is ``shutdown``, adopted
producers are closed when the request ends.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import errclass
from errclass.integrations import asgi
from errclass.integrations.asgi import ErrclassMiddleware
from tests.support import async_wait_until, free_port

HTTPS = ["h11", "httptools"]
START = {"type": "http.response.start", "status": 200, "headers": []}
App = Callable[[Any, Any, Any], Awaitable[None]]


def body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


class Served:
    """A running server: its port, and uvicorn's request cycle of each request as
    the server handed it to the application (seen outside errclass), in order."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cycles: list[Any] = []
        self.ended = 0  # requests whose application returned or raised

    def cycle(self) -> Any:
        return self.cycles[-1]


@asynccontextmanager
async def uvicorn_serving(
    app: App, http: str, grace: float = 1.0, keep_alive: float = 5.0
) -> AsyncIterator[Served]:
    """A real uvicorn server for *app* on a loopback port, in this event loop."""
    import uvicorn

    served = Served(free_port())

    async def outside(scope: Any, receive: Any, send: Any) -> None:
        served.cycles.append(receive.__self__)
        try:
            await app(scope, receive, send)
        finally:
            served.ended += 1

    config = uvicorn.Config(
        outside,
        host="127.0.0.1",
        port=served.port,
        http=http,
        lifespan="off",
        log_level="critical",
        access_log=False,
        timeout_graceful_shutdown=grace,
        timeout_keep_alive=keep_alive,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        await async_wait_until(lambda: server.started or task.done(), what="uvicorn started")
        assert not task.done(), task
        yield served
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


class Client:
    """One raw HTTP/1.1 connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def get(cls, port: int, request: bytes = b"") -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request or b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return cls(reader, writer)

    async def read_until(self, marker: bytes) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(marker), 10)

    def reset(self) -> None:
        """Leave with a TCP RST."""
        sock: socket.socket = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


def listeners() -> list[asyncio.Task[Any]]:
    """The middleware's listener tasks running now."""
    return [t for t in asyncio.all_tasks() if "_listen_loop" in repr(t.get_coro())]


@pytest.mark.parametrize("http", HTTPS)
async def test_the_app_gets_uvicorns_own_receive_and_no_listener_runs(http: str) -> None:
    """An application that never reads: on the general path a listener task reads for
    it; on uvicorn, its cycle says when the client leaves, so none runs, and the
    request body is uvicorn's to hand out (read after the response started, in full)."""
    events: list[errclass.Event] = []
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await asyncio.sleep(0.01)  # the general path's listener would be running now
        seen["receive"], seen["send"], seen["listeners"] = receive, send, listeners()
        got = b""
        while True:
            message = await receive()
            got += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send(body(b"got %d" % len(got) if got == posted else b"not the body", False))

    posted = b"p" * 200_000
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(posted)
    async with uvicorn_serving(ErrclassMiddleware(app, events.append, name="p"), http) as served:
        client = await Client.get(served.port, request + posted)
        await client.read_until(b"\r\n\r\n")
        assert b"got 200000" in await client.read_until(b"0\r\n\r\n")
        await async_wait_until(lambda: events, what="the request recorded")
        client.close()
    cycle = served.cycle()
    assert type(cycle).__name__ == "RequestResponseCycle"
    assert type(cycle).__module__ == f"uvicorn.protocols.http.{http}_impl"
    assert seen["receive"] == cycle.receive  # uvicorn's own, not errclass's
    assert seen["send"] == cycle.send
    assert seen["listeners"] == []
    assert "set" not in vars(cycle.message_event)  # errclass's hook is gone with the request
    assert [e.reason for e in events] == ["ok"]


@pytest.mark.parametrize("http", HTTPS)
@pytest.mark.parametrize("leave", ["reset", "close"])
async def test_an_app_that_returns_normally_after_its_client_left_is_client_gone(
    http: str, leave: str
) -> None:
    """Nobody calls receive(): the cycle's ``disconnected`` is what tells."""
    events: list[errclass.Event] = []
    sent = asyncio.Event()
    left: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a" * 100, True))
        sent.set()
        cycle = served.cycle()
        await async_wait_until(lambda: cycle.disconnected, what="uvicorn saw the client leave")
        left.append(listeners())
        await send(body(b"late", False))  # a no-op on uvicorn: the client is gone

    async with uvicorn_serving(ErrclassMiddleware(app, events.append, name="p"), http) as served:
        client = await Client.get(served.port)
        await sent.wait()
        await client.read_until(b"a" * 100)
        client.reset() if leave == "reset" else client.close()
        await async_wait_until(lambda: events, what="the request recorded")
    assert left == [[]]
    assert [(e.reason, e.outcome.rule) for e in events] == [("client_gone", "transport_disconnect")]


@pytest.mark.parametrize("http", HTTPS)
@pytest.mark.parametrize("keep_alive", [True, False])
async def test_a_write_that_failed_before_the_last_message_is_client_gone(
    http: str, keep_alive: bool
) -> None:
    """The transport closes under a producer that never yields (what a failed write
    does: ``abort()`` is that path), and its last message follows in the same loop
    turn: uvicorn drops it and completes the response, and never says
    ``disconnected``. The transport, asked as the response completes, tells; also
    on a response that is not kept alive, whose transport uvicorn closes itself
    right after completing it."""
    events: list[errclass.Event] = []
    seen: list[bool] = []
    start = START if keep_alive else {**START, "headers": [(b"connection", b"close")]}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send(body(b"a", True))
        cycle = served.cycle()
        cycle.transport.abort()
        await send(body(b"", False))
        seen.append(cycle.response_complete)
        await async_wait_until(lambda: cycle.transport.is_closing())
        seen.append(cycle.disconnected)

    async with uvicorn_serving(ErrclassMiddleware(app, events.append, name="p"), http) as served:
        client = await Client.get(served.port)
        await async_wait_until(lambda: events, what="the request recorded")
        client.close()
    assert seen == [True, False]  # uvicorn itself never says so
    assert [(e.reason, e.outcome.rule) for e in events] == [("client_gone", "transport_disconnect")]


@pytest.mark.parametrize("http", HTTPS)
async def test_a_completed_response_is_ok_whatever_the_connection_does_next(http: str) -> None:
    """``Connection: close``: uvicorn closes the transport once the response is complete,
    and the client leaves. Neither is the client leaving before the end: the request,
    and a producer that finishes afterwards, are ok."""
    events: list[errclass.Event] = []
    closed: list[bool] = []

    @errclass.track(events.append, name="after")
    async def after() -> None:
        return None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({**START, "headers": [(b"connection", b"close")]})
        await send(body(b"whole", False))
        cycle = served.cycle()
        await async_wait_until(lambda: cycle.transport.is_closing(), what="uvicorn closed")
        closed.append(True)
        await after()

    middleware = ErrclassMiddleware(app, events.append, name="p")
    async with uvicorn_serving(middleware, http) as served:
        client = await Client.get(served.port)
        assert (await client.read_until(b"whole")).endswith(b"whole")
        await async_wait_until(lambda: len(events) == 2, what="both recorded")
        client.close()
    assert closed == [True]
    assert [(e.producer, e.reason) for e in events] == [("after", "ok"), ("p", "ok")]


@pytest.mark.parametrize("http", HTTPS)
async def test_a_producer_that_completes_after_its_client_left_is_client_gone(http: str) -> None:
    """``record=False``: only the producers record; the cycle speaks for the request
    until its response completed."""
    events: list[errclass.Event] = []
    sent = asyncio.Event()

    @errclass.track(events.append, name="inner")
    async def inner() -> None:
        return None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await inner()  # the client is still there
        await send(body(b"a" * 100, True))
        sent.set()
        cycle = served.cycle()
        await async_wait_until(lambda: cycle.disconnected, what="uvicorn saw the client leave")
        await inner()

    async with uvicorn_serving(ErrclassMiddleware(app, record=False), http) as served:
        client = await Client.get(served.port)
        await sent.wait()
        await client.read_until(b"a" * 100)
        client.reset()
        await async_wait_until(lambda: len(events) == 2, what="both recorded")
    assert [(e.producer, e.reason) for e in events] == [("inner", "ok"), ("inner", "client_gone")]


@pytest.mark.parametrize("http", HTTPS)
async def test_an_adopted_producer_is_closed_before_the_request_ends(http: str) -> None:
    events: list[errclass.Event] = []
    kept: list[Any] = []

    async def produce() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 100

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body_iter = errclass.stream(produce(), events.append, name="adopted")
        kept.append(body_iter)  # alive: only the middleware may close it
        await send(START)
        await send(body(await body_iter.__anext__(), True))
        cycle = served.cycle()
        await async_wait_until(lambda: cycle.disconnected, what="uvicorn saw the client leave")

    async with uvicorn_serving(ErrclassMiddleware(app, record=False), http) as served:
        client = await Client.get(served.port)
        await client.read_until(b"x" * 100)
        client.reset()
        await async_wait_until(lambda: served.ended, what="the request ended")
        recorded = [(e.producer, e.reason) for e in events]  # when the request ended
    assert recorded == [("adopted", "client_gone")]


@pytest.mark.parametrize("http", HTTPS)
async def test_returning_without_finishing_is_write_failed_and_errors_are_classified(
    http: str,
) -> None:
    events: list[errclass.Event] = []
    error = KeyError("x")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", True))
        if scope["path"] == "/raise":
            raise error

    raised: list[BaseException] = []

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        try:
            await middleware(scope, receive, send)
        except BaseException as e:
            raised.append(e)  # uvicorn would log it and close the connection
            served.cycle().transport.close()

    middleware = ErrclassMiddleware(app, events.append, name="p")
    async with uvicorn_serving(outer, http) as served:
        for path in (b"/return", b"/raise"):
            client = await Client.get(served.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            n = len(events)
            await async_wait_until(lambda n=n: len(events) > n, what="the request recorded")
            client.close()
    assert raised == [error]  # the same object
    returned, failed = events
    assert (returned.reason, returned.outcome.rule) == ("write_failed", "response_incomplete")
    assert (failed.reason, failed.exception) == ("write_failed", error)


@pytest.mark.parametrize("http", HTTPS)
async def test_a_request_the_server_cancels_at_shutdown_is_shutdown(http: str) -> None:
    """uvicorn's ``timeout_graceful_shutdown`` cancels the request: no client left."""
    events: list[errclass.Event] = []
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        started.set()
        await asyncio.sleep(60)

    middleware = ErrclassMiddleware(app, events.append, name="p")
    async with uvicorn_serving(middleware, http, grace=0.2) as served:
        client = await Client.get(served.port)
        await asyncio.wait_for(started.wait(), 10)
    client.close()
    assert [(e.reason, e.outcome.rule) for e in events] == [
        ("deadline_exceeded", "server_cancelled")
    ]


async def test_only_uvicorns_own_request_cycles_take_this_path() -> None:
    """A lookalike (uvicorn's module name, not its attributes; or its attributes in
    another module) takes the general path, where errclass wraps ``receive``."""

    class Transport:
        def is_closing(self) -> bool:
            return False

    def cycle_class(module: str, disconnected: object) -> Any:
        class RequestResponseCycle:
            def __init__(self) -> None:
                self.disconnected, self.response_complete = disconnected, False
                self.transport = Transport()
                self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def receive(self) -> dict[str, Any]:
                return await self.inbox.get()

            async def send(self, message: dict[str, Any]) -> None:
                if message["type"] == "http.response.body" and not message["more_body"]:
                    self.response_complete = True
                    self.inbox.put_nowait({"type": "http.disconnect"})

        RequestResponseCycle.__module__ = module
        return RequestResponseCycle

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(receive)
        await send(START)
        await send(body(b"", False))

    middleware = ErrclassMiddleware(app, name="p", logger=None)
    for module, disconnected in [
        ("uvicorn.protocols.http.h11_impl", None),  # not uvicorn's attributes
        ("tests.uvicorn_lookalike", False),  # not uvicorn's module
    ]:
        cycle = cycle_class(module, disconnected)()
        cycle.inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        await middleware({"type": "http", "path": "/"}, cycle.receive, cycle.send)
        assert isinstance(seen.pop().__self__, asgi._Exchange)
        assert asgi._CYCLES[type(cycle)] is False


@pytest.mark.parametrize("http", HTTPS)
@pytest.mark.parametrize("leave", [False, True])
async def test_nested_middlewares_each_record_and_leave_uvicorns_event_as_it_was(
    http: str, leave: bool
) -> None:
    """Two layers on one request (an app mounted under another): each reads the same
    cycle, each records once, and the cycle's event is uvicorn's own afterwards."""
    events: list[errclass.Event] = []
    sent = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", True))
        if leave:
            sent.set()
            cycle = served.cycle()
            await async_wait_until(lambda: cycle.disconnected, what="uvicorn saw the client go")
        await send(body(b"", False))

    inner = ErrclassMiddleware(app, events.append, name="inner")
    async with uvicorn_serving(
        ErrclassMiddleware(inner, events.append, name="outer"), http
    ) as served:
        client = await Client.get(served.port)
        if leave:
            await asyncio.wait_for(sent.wait(), 10)
            client.reset()
        await async_wait_until(lambda: len(events) == 2, what="both layers recorded")
        if not leave:
            client.close()
    reason = "client_gone" if leave else "ok"
    assert [(e.producer, e.reason) for e in events] == [("inner", reason), ("outer", reason)]
    assert "set" not in vars(served.cycle().message_event)


@pytest.mark.parametrize("http", HTTPS)
async def test_the_hook_leaves_the_events_attributes_inline(http: str) -> None:
    """errclass's hook on uvicorn's event never reads ``event.__dict__``: reading it
    turns the event's inline attribute values into a dict, and the specialized
    attribute loads of uvicorn and asyncio.Event then miss on it (measured on a
    Starlette request in a process of its own: about 3k instructions, 1-2 µs).
    The garbage collector's view of the event shows which storage it has."""
    events: list[errclass.Event] = []
    storage: list[list[str]] = []

    def kinds(event: asyncio.Event) -> list[str]:
        return sorted(type(r).__name__ for r in gc.get_referents(event))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        event = receive.__self__.message_event
        await send(START)
        storage.append(kinds(event))  # hooked: errclass's method is an attribute
        await send(body(b"a", False))

    async with uvicorn_serving(ErrclassMiddleware(app, events.append, name="p"), http) as served:
        client = await Client.get(served.port)
        await async_wait_until(lambda: events, what="the request recorded")
        client.close()
    (during,) = storage
    assert "method" in during and "dict" not in during  # hooked, in inline values
    after = kinds(served.cycle().message_event)
    assert "method" not in after and "dict" not in after  # unhooked, still inline
    assert [e.reason for e in events] == ["ok"]


@pytest.mark.parametrize("http", HTTPS)
async def test_a_hook_of_someone_elses_on_the_event_is_called_and_left_in_place(
    http: str,
) -> None:
    """Another layer outside errclass replaced the event's ``set`` with a plain
    function: errclass calls it in turn and puts it back when the request ends."""
    events: list[errclass.Event] = []
    calls: list[str] = []
    after: list[Any] = []

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        event = receive.__self__.message_event
        own = event.set

        def theirs() -> None:
            calls.append("set")
            own()

        event.set = theirs
        await middleware(scope, receive, send)
        after.append(event.set)
        del event.set

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", False))

    middleware = ErrclassMiddleware(app, events.append, name="p")
    async with uvicorn_serving(outer, http) as served:
        client = await Client.get(served.port)
        await async_wait_until(lambda: events and after, what="the request recorded")
        client.close()
    assert after[0].__name__ == "theirs"
    assert calls == ["set"]  # the response completed: through errclass's hook, to theirs
    assert [e.reason for e in events] == ["ok"]
    assert "set" not in vars(served.cycle().message_event)


@pytest.mark.parametrize("http", HTTPS)
async def test_a_request_keeps_its_transport_alive_only_while_it_runs(http: str) -> None:
    """A success asks the context only while a transport is alive (``alive``): uvicorn's
    request counts in it while it is served, and not once it is over. (Not at once:
    the keep-alive timer uvicorn sets during the request holds a copy of its context
    until it fires, even once cancelled.)"""
    from errclass._client_state import alive

    gc.collect()
    before = len(alive)
    during: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        during.append(len(alive))
        await send(START)
        await send(body(b"done", False))

    middleware = ErrclassMiddleware(app, logger=None)
    async with uvicorn_serving(middleware, http, keep_alive=0.2) as served:
        for _ in range(3):
            client = await Client.get(served.port)
            await client.read_until(b"done")
            client.close()
        assert type(served.cycle()).__module__ == f"uvicorn.protocols.http.{http}_impl"
        await async_wait_until(lambda: len(alive) == before, what="no transport left alive")
    assert len(during) == 3
    assert all(n > before for n in during)
