"""The ASGI middleware's per-request fast paths do what the general ones did.

Body chunks before the last pass straight to the server; uvicorn's transport is
asked directly before the last message; the probe stops speaking for a request
once its response completed; a request leaves no reference cycle behind (its
objects go with their last reference, not with the garbage collector); each
endpoint's tracker is looked up once; the loop turns given to servers that
cannot be asked (hypercorn) are what catches a disconnect already on its way.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import errclass
from errclass._client_state import Transport
from errclass.integrations._endpoints import MAX_ENDPOINTS, Endpoints
from errclass.integrations.asgi import ErrclassMiddleware, _Exchange
from tests.test_integration_asgi import GET, HTTP, START, Server, body


class _Closing:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class UvicornLike(Server):
    """A server whose ``receive`` is a method of an object with uvicorn's request-cycle
    attributes: ``transport.is_closing()`` and ``disconnected``."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        super().__init__(*messages)
        self.transport = _Closing()
        self.disconnected = False


def trailers(more: bool) -> dict[str, Any]:
    return {"type": "http.response.trailers", "headers": [], "more_trailers": more}


class TrailersServer(Server):
    """Says http.disconnect after the last trailers message, not after the body."""

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message == trailers(False):
            self.inbox.put_nowait({"type": "http.disconnect"})


async def test_body_chunks_pass_through_in_order_and_the_last_completes() -> None:
    events: list[errclass.Event] = []
    sent = [START, *(body(b"%d" % i, True) for i in range(5)), body(b"", False)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in sent:
            await send(message)

    server = Server(GET)
    await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
    assert server.sent == sent
    assert [e.reason for e in events] == ["ok"]


async def test_with_trailers_the_last_body_chunk_is_not_the_end() -> None:
    """``trailers: True``: the body's ``more_body: False`` passes straight through; the
    response completes with the last trailers message, and is incomplete without it."""
    start = {**START, "trailers": True}
    for sent, reason in [
        ([start, body(b"a", False), trailers(True), trailers(False)], "ok"),
        ([start, body(b"a", False), trailers(True)], "write_failed"),
    ]:
        events: list[errclass.Event] = []

        async def app(scope: Any, receive: Any, send: Any, sent: Any = sent) -> None:
            for message in sent:
                await send(message)

        server = TrailersServer(GET)
        await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
        assert server.sent == sent
        assert [e.reason for e in events] == [reason]


async def test_uvicorn_transport_closing_before_the_last_message_is_client_gone() -> None:
    events: list[errclass.Event] = []
    server = UvicornLike(GET)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", True))
        server.transport.closing = True  # a write failed: the client is gone
        await send(body(b"", False))  # uvicorn drops it silently

    await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, server.send)
    assert [(e.reason, e.outcome.rule) for e in events] == [("client_gone", "transport_disconnect")]


async def test_disconnected_during_the_last_send_is_client_gone() -> None:
    events: list[errclass.Event] = []
    server = UvicornLike(GET)

    async def send(message: dict[str, Any]) -> None:
        if not message.get("more_body") and message["type"] == "http.response.body":
            server.disconnected = True  # flow control waited until the client left
        await server.send(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"", False))

    await ErrclassMiddleware(app, events.append, name="p")(HTTP, server.receive, send)
    assert [e.reason for e in events] == ["client_gone"]


async def test_the_probe_speaks_for_a_request_only_until_its_response_completed() -> None:
    """A producer that finishes while uvicorn's transport is closing is client_gone
    before the response completed, and ok after it (uvicorn closes the transport of a
    ``Connection: close`` response once it is complete)."""
    events: list[errclass.Event] = []

    @errclass.track(events.append, name="inner")
    async def inner() -> None:
        return None

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        server.transport.closing = True
        await inner()
        server.transport.closing = False
        await send(body(b"", False))
        server.transport.closing = True
        await inner()

    server = UvicornLike(GET)
    await ErrclassMiddleware(app, record=False)(HTTP, server.receive, server.send)
    assert [(e.producer, e.reason) for e in events] == [("inner", "client_gone"), ("inner", "ok")]
    probed = Transport(probe=lambda: True)
    assert probed.client_gone()
    probed.complete = True
    assert not probed.client_gone()


def _garbage_after(app: Any, server: Server) -> list[object]:
    """The middleware's objects that only the garbage collector would free after one
    request of *app*."""
    gc.collect()
    gc.disable()
    try:
        asyncio.run(
            ErrclassMiddleware(app, name="p", logger=None)(HTTP, server.receive, server.send)
        )
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, _Exchange | Transport)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_request_leaves_no_reference_cycle() -> None:
    async def reads(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # an app that reads (Starlette): no listener of ours
        await send(START)
        await send(body(b"a", True))
        await send(body(b"", False))

    async def never_reads(scope: Any, receive: Any, send: Any) -> None:
        await send(START)  # the middleware's listener reads for it
        await asyncio.sleep(0)
        await send(body(b"", False))

    for app in (reads, never_reads):
        assert _garbage_after(app, UvicornLike(GET)) == []
        assert _garbage_after(app, Server(GET)) == []


def test_an_endpoint_tracker_is_looked_up_once_and_the_cache_is_bounded() -> None:
    endpoints = Endpoints(lambda e: None, name=None, policy=None, logger=None, overflow="x.other")

    def endpoint() -> None: ...

    class Handler:  # not a function: named by its class on every request, not cached
        def __call__(self) -> None: ...

    first = endpoints.tracker(endpoint)
    assert endpoints.tracker(endpoint) is first
    assert first.producer.endswith(".<locals>.endpoint")
    assert endpoints.tracker(Handler()).producer.endswith(".<locals>.Handler")
    assert endpoints.tracker(Handler()) is endpoints.tracker(Handler())  # one tracker per name
    # a class-based view (aiohttp's web.View, Starlette's HTTPEndpoint): cached by the class
    view = endpoints.tracker(Handler)
    assert endpoints.by_endpoint[Handler] is view and view.producer.endswith(".<locals>.Handler")

    functions = [eval("lambda: None") for _ in range(MAX_ENDPOINTS + 5)]
    for f in functions:
        f.__qualname__ = f"f{id(f)}"
    producers = [endpoints.tracker(f).producer for f in functions]
    assert len(endpoints.by_endpoint) <= MAX_ENDPOINTS
    assert producers[-1] == "x.other"  # past the bound: the overflow producer, as before
    assert endpoints.tracker(endpoint) is first


async def test_the_loop_turns_before_the_last_message_catch_a_disconnect_on_its_way() -> None:
    """On a server errclass cannot ask (hypercorn), a disconnect already queued when a
    producer that never yields sends its last message is client_gone; without the loop
    turns (the bench's ``_settle_steps = 0``) it would be missed."""

    class NoTurns(ErrclassMiddleware):
        _settle_steps = 0

    for middleware, reason in [(ErrclassMiddleware, "client_gone"), (NoTurns, "ok")]:
        events: list[errclass.Event] = []
        server = Server(GET)

        async def app(scope: Any, receive: Any, send: Any, server: Server = server) -> None:
            await send(START)
            server.disconnect()
            await send(body(b"", False))

        await middleware(app, events.append, name="p")(HTTP, server.receive, server.send)
        assert [e.reason for e in events] == [reason]
