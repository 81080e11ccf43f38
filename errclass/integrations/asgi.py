"""ASGI middleware: one outcome per HTTP response, from what the server itself saw.

uvicorn, hypercorn and granian make ``send()`` a silent no-op once the client
has left, so a producer that never awaits completes "successfully" into a
closed socket, and Starlette only cancels one that does await. The reliable
signal is ``{"type": "http.disconnect"}`` arriving from ``receive`` before the
response completed. How the middleware learns it depends on the server:

* on uvicorn's HTTP/1 protocols (h11, httptools) it reads the fact from
  uvicorn's request cycle, which answers ``receive()`` with ``http.disconnect``
  exactly when it says ``disconnected``: the application gets uvicorn's own
  ``receive``, no listener task runs and no ``receive`` wrapper is built, and
  the cycle is asked only when a producer records or the request ends;
* elsewhere (hypercorn, granian, a uvicorn whose cycle has changed, any other
  server) it wraps ``receive`` and watches it, and once the response has
  started a listener task reads for an application that is not reading.

Either way it:

* records one outcome per HTTP request under its own producer name (unless
  ``record=False``): ``client_gone`` when the server reported the client gone
  before the last body message, even if the application returned normally;
  ``write_failed`` if it returned without finishing its response; otherwise
  the classification of what the application raised, or ``ok``;
* publishes the disconnect to ``errclass.track()``/``errclass.stream()``
  producers running for the request, so that one that completes after its
  client left records ``client_gone`` as well;
* closes the producers registered with :func:`stream` (or :func:`adopt`) when
  the request ends, so their outcome is recorded during the request and not
  when the garbage collector finds a generator parked at ``yield``.

A cancellation that reaches the middleware without any ``http.disconnect`` was
made by the server itself: uvicorn's ``timeout_graceful_shutdown`` and
hypercorn's ``graceful_timeout`` cancel the requests still running at
shutdown. That is recorded as ``shutdown`` (default ``deadline_exceeded``: the
server's grace period ran out), never as ``client_gone``. (Their command lines
end the process right after cancelling, before a request can record anything;
embedded servers let it finish.)

Tested with Starlette and sse-starlette on uvicorn (h11, httptools) and
hypercorn (asyncio, trio); FastAPI is Starlette underneath. On trio there is
no background listener: only the application's own ``receive`` calls are
watched (Starlette and sse-starlette always have one).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import Any

from .. import _client_state, _trace
from .._options import DEFAULT_LOGGER, check
from .._outcome import Outcome, Reason
from .._policy import Policy
from ._endpoints import CACHEABLE, Endpoints, shutdown_outcome
from ._request_end import OK, Verdict, adopt, apply, close_adopted, settle
from ._routes import ROUTE_KEY, route

__all__ = ["ErrclassMiddleware", "ResponseIncomplete", "adopt"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SETTLE_STEPS = 4  # loop iterations a server needs to turn a reset into http.disconnect
_background: set[asyncio.Task[Any]] = set()  # listener tasks being cancelled


class ResponseIncomplete(Exception):
    """Handed to sinks when the application returned without finishing its
    response (and no disconnect explains it). Never raised."""


_OVERFLOW = "errclass.asgi.other"  # the producer of endpoints past MAX_ENDPOINTS
_INCOMPLETE = Outcome(Reason.WRITE_FAILED, "errclass.ResponseIncomplete", "response_incomplete")
_DEADLINE_CUT = Outcome(Reason.DEADLINE_EXCEEDED, "TimeoutError", "response_deadline")


class ErrclassMiddleware:
    """Wrap an ASGI application: ``app = ErrclassMiddleware(app)``, or
    ``app.add_middleware(ErrclassMiddleware)`` in Starlette/FastAPI.

    *sinks*, *policy* and *logger* are those of ``errclass.track()``. The
    producer name is *name*, else the matched endpoint (``module.qualname``, as
    ``track()`` names a function; Starlette and FastAPI put it in the scope),
    else the wrapped application. ``record=False`` only publishes disconnects and
    closes adopted producers, for apps whose producers are already wrapped with
    ``errclass.track()``/``errclass.stream()`` (recording in both places would
    count each request under two producer names). *shutdown* is the reason for
    a request the server itself cancelled.
    """

    #: Loop turns given to a server without a transport to ask (hypercorn) before
    #: the last message, to let its ``http.disconnect`` arrive (bench/bench_asgi.py
    #: sets 0 in a subclass to measure what they cost).
    _settle_steps = _SETTLE_STEPS

    def __init__(
        self,
        app: ASGIApp,
        *sinks: object,
        name: str | None = None,
        policy: Policy | None = None,
        logger: logging.Logger | str | None = DEFAULT_LOGGER,
        record: bool = True,
        shutdown: Reason | str = Reason.DEADLINE_EXCEEDED,
    ) -> None:
        if not callable(app):
            raise TypeError(f"ErrclassMiddleware wraps an ASGI application, got {app!r}")
        check(policy, "producer", name)
        if not isinstance(record, bool):
            raise TypeError(f"record= must be True or False, got {record!r}")
        self._shutdown = shutdown_outcome(shutdown)
        self.app = app
        self._endpoints = (
            Endpoints(*sinks, name=name, policy=policy, logger=logger, overflow=_OVERFLOW)
            if record
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault(ROUTE_KEY, None)  # the framework layers name the route here
        # uvicorn's receive is a method of its request cycle (see _UvicornRequest).
        cycle = getattr(receive, "__self__", None)
        uvicorn = _CYCLES.get(type(cycle))
        exchange: _Exchange | _UvicornRequest
        transport: _client_state.Transport
        if uvicorn or (uvicorn is None and _uvicorn_cycle(cycle)):
            exchange = transport = _UvicornRequest(cycle)
        else:
            exchange = _Exchange(receive, send, self._settle_steps)
            transport, receive, send = exchange.transport, exchange.receive, exchange.send
        # Every request pays this: _trace.capture() is written out here, and the
        # transport is published without a `with` block.
        t0, trace = perf_counter(), _trace.trace
        ctx = None if trace is None or trace._TRACER_PROVIDER is None else _trace.get_current()
        raised: BaseException | None = None
        token = _client_state.publish(transport)
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            raised = exc
            raise
        finally:
            _client_state.unpublish(token)
            exchange.ended()
            if raised is None and transport.complete and not transport.gone:
                verdict: Verdict = OK
            else:
                verdict = self._verdict(transport, raised)
            endpoints = self._endpoints
            if endpoints is not None:
                # The tracker of a route seen before, as route() and tracker() find it:
                # the framework layer's name, else Starlette's or FastAPI's endpoint.
                key = scope.get(ROUTE_KEY)
                if key is None:
                    key = scope.get("endpoint")
                tracker = endpoints.by_endpoint.get(key) if type(key) in CACHEABLE else None
                if tracker is None:
                    tracker = endpoints.tracker(route(scope, self.app))
                t0, ctx = t0 if tracker.timed else 0.0, ctx if tracker.traced else None
                if verdict is OK:
                    tracker.ok(t0, ctx)
                else:
                    apply(tracker, verdict, t0, ctx)
            if transport.pending:
                settle(transport, verdict)
            if exchange._listener is not None or transport.closers:
                await exchange.finish()

    def _verdict(self, transport: _client_state.Transport, exc: BaseException | None) -> Verdict:
        """What ended the request: an outcome decided here and what to hand the
        sinks, or ``(None, exc)`` to classify *exc* (``(None, None)``: ``ok``)."""
        exc = _unwrap(exc)
        if transport.gone:
            # The server said the client left before the response completed: whatever
            # the app did afterwards (returned, was cancelled, failed to write) is that.
            if exc is None or _cancellation(exc):
                return _client_state.TRANSPORT_GONE, exc or _client_state.ClientDisconnected()
            return None, exc
        if exc is None and not transport.complete:
            # The app returned without finishing its response: the server cuts the
            # stream (uvicorn: "ASGI callable returned without completing response").
            # After an expired errclass.deadline() that is the deadline (Quart
            # swallows the TimeoutError of a response body).
            cut = _DEADLINE_CUT if transport.deadline else _INCOMPLETE
            return cut, ResponseIncomplete()
        if exc is not None and _cancellation(exc):
            # No http.disconnect came, yet the request was cancelled: by the server
            # (graceful-shutdown timeout), not by a client leaving.
            return self._shutdown, exc
        return None, exc


def _unwrap(exc: BaseException | None) -> BaseException | None:
    """The producer's own error behind a framework's wrapper (Litestar raises
    ``LitestarException(...) from exc`` once the response has started)."""
    if (
        exc is not None
        and exc.__cause__ is not None
        and type(exc).__module__.startswith("litestar.")
    ):
        return exc.__cause__
    return exc


class _Exchange:
    """One request's ``receive``/``send`` as the application sees them.

    Before the response starts, ``receive`` is passed straight through (and
    watched). Once it has started and nobody is waiting in ``receive``, a
    listener task reads from the server on the application's behalf and hands
    it every message in order: at most one request-body chunk ahead, so flow
    control is unchanged, but always the ``http.disconnect`` that follows.
    """

    __slots__ = (
        "_arrived",
        "_closing",
        "_cycle",
        "_direct",
        "_held",
        "_listener",
        "_receive",
        "_send",
        "_steps",
        "_taken",
        "_trailers",
        "transport",
    )

    def __init__(self, receive: Receive, send: Send, steps: int = _SETTLE_STEPS) -> None:
        self._receive, self._send, self._steps = receive, send, steps
        # uvicorn's receive is a method of its request cycle, which says `disconnected`
        # once the connection was lost and holds the connection's transport, whose
        # is_closing() is True as soon as a write failed.
        cycle: Any = getattr(receive, "__self__", None)
        closing = getattr(getattr(cycle, "transport", None), "is_closing", None)
        self._closing: Callable[[], bool] | None = closing if callable(closing) else None
        self._cycle = cycle if isinstance(getattr(cycle, "disconnected", None), bool) else None
        # (the probe is the transport's own method: no reference cycle through us,
        # so that a request's objects go with their last reference, not the GC)
        self.transport = _client_state.Transport(probe=self._closing)
        self._trailers = False
        self._direct = 0  # application calls of receive() in flight
        self._listener: asyncio.Task[None] | None = None
        self._held: deque[Message | BaseException] = deque()
        self._arrived: asyncio.Event | None = None
        self._taken: asyncio.Event | None = None

    async def receive(self) -> Message:
        if self._listener is None or (self._listener.done() and not self._held):
            self._direct += 1
            try:
                message = await self._receive()
            finally:
                self._direct -= 1
            self._observe(message)
            return message
        assert self._arrived is not None
        assert self._taken is not None
        while not self._held:
            self._arrived.clear()
            await self._arrived.wait()
        item = self._held.popleft()
        self._taken.set()
        if isinstance(item, BaseException):
            raise item
        return item

    def send(self, message: Message) -> Awaitable[None]:
        # Every message but the last goes straight to the server: no coroutine of ours
        # on the hot path (a streaming response sends dozens per request).
        kind = message["type"]
        if kind == "http.response.body":
            if message.get("more_body", False) or self._trailers:
                return self._send(message)
            return self._send_last(message)
        if kind == "http.response.start":
            self._trailers = bool(message.get("trailers", False))
            if not self._direct:
                self._listen()
        elif _final(kind, message, self._trailers):
            return self._send_last(message)
        return self._send(message)

    async def _send_last(self, message: Message) -> None:
        if not self.transport.gone:
            if self._closing is not None:
                self.transport.gone = self._closing()
            else:
                await self._settle()
        self.transport.complete = True
        await self._send(message)
        # The last send may have waited on flow control until the client left
        # (uvicorn then returns quietly): not a response the client received.
        if self._cycle is not None and self._cycle.disconnected:
            self.transport.gone = True

    async def _settle(self) -> None:
        """Before the last message: has the connection already broken under us?

        A producer that never yields runs to completion before the server
        processes a reset (uvicorn and hypercorn drop writes to a closed
        transport silently). uvicorn's transport tells at once (asked before
        this is called); elsewhere, let the loop run the server's pending
        callbacks so that its ``http.disconnect`` reaches us first.
        """
        if (self._listener is not None or self._direct) and _on_asyncio():
            # Someone is waiting in receive(): give the server a few loop turns.
            for _ in range(self._steps):
                await asyncio.sleep(0)
                if self.transport.gone:
                    return

    def ended(self) -> None:
        """The application returned or raised: what the server said is in ``transport``."""

    def _observe(self, message: Message) -> None:
        # After the response completed, servers answer receive() with
        # http.disconnect whether or not the client is still there.
        if message["type"] == "http.disconnect" and not self.transport.complete:
            self.transport.gone = True

    def _listen(self) -> None:
        if self._listener is not None or self._direct or self.transport.gone:
            return
        if not _on_asyncio():  # trio: observe the application's own receive calls only
            return
        loop = asyncio.get_running_loop()
        self._arrived, self._taken = asyncio.Event(), asyncio.Event()
        self._listener = loop.create_task(self._listen_loop())

    async def _listen_loop(self) -> None:
        assert self._arrived is not None
        assert self._taken is not None
        while True:
            try:
                message = await self._receive()
            except Exception as e:  # the application gets it from its receive()
                self._held.append(e)
                self._arrived.set()
                return
            self._observe(message)
            self._held.append(message)
            self._arrived.set()
            if message["type"] == "http.disconnect":
                return
            if message.get("more_body", False):  # one body chunk ahead, no more
                self._taken.clear()
                await self._taken.wait()

    async def finish(self) -> None:
        """Stop listening and close the producers adopted during the request."""
        listener, self._listener = self._listener, None
        if listener is not None and not listener.done():
            listener.cancel()
            _background.add(listener)
            listener.add_done_callback(_background.discard)
        await close_adopted(self.transport)


class _UvicornRequest(_client_state.Transport):
    """One request on uvicorn's HTTP/1 protocols (h11, httptools): the transport
    its producers ask.

    uvicorn answers ``receive()`` with ``http.disconnect`` exactly when its
    request cycle says ``disconnected`` (the connection was lost before the
    response completed) or the response is complete. So the application gets
    uvicorn's own ``receive`` and ``send``, no listener task runs, and whether
    the client left is read from the cycle when someone asks: a producer
    recording, or the end of the request.

    One fact the cycle does not keep: a write that failed just before the last
    message (uvicorn then drops the rest silently, completes the response and
    never says ``disconnected``). uvicorn sets the cycle's ``message_event`` the
    moment the response completes, before it closes a connection it does not
    keep alive, so for the request that event's ``set`` is this object's
    ``_responded``, which asks the transport then (as ``_Exchange`` does before
    the last message): one call per request instead of one per message.
    """

    __slots__ = ("_cycle", "_event", "_nested", "_set")
    _listener = None  # there is none: see above

    def __init__(self, cycle: Any) -> None:
        # Transport.__init__ written out: one call fewer per request.
        _client_state.alive.append(None)
        self.gone = self.deadline = self.complete = False
        self.probe, self.closers, self.pending = None, [], []
        self._cycle = cycle
        event = self._event = cycle.message_event
        self._set = set_ = event.set
        # Anything but the event's own method is an outer middleware's hook (nested
        # layers). Never read event.__dict__: it turns the event's inline attribute
        # values into a dict, and uvicorn's and asyncio.Event's own attribute loads
        # then miss their specialized forms, for this event and, by the thrash, for
        # the process's other events. The price of this way is smaller: "set" joins
        # asyncio.Event's shared attribute keys, so `.set()` calls are not specialized.
        self._nested = getattr(set_, "__self__", None) is not event
        event.set = self._responded

    def _responded(self) -> None:
        """The cycle's event is set: the response completed, a request body
        arrived, or the connection was lost."""
        if not self.complete and self._cycle.response_complete:
            self.complete = True
            if not self.gone:
                self.gone = self._cycle.transport.is_closing()
        self._set()

    def client_gone(self) -> bool:
        if self.gone:
            return True
        if self.complete:
            return False
        cycle = self._cycle
        try:
            return bool(cycle.disconnected or cycle.transport.is_closing())
        except Exception:  # a broken probe must not break recording
            return False

    def ended(self) -> None:
        """Whether the client left before the response completed: the last send
        may also have waited on flow control until it did (uvicorn then returns
        quietly). Once uvicorn completed the response, it no longer says
        ``disconnected``."""
        if self._nested:
            self._event.set = self._set
        else:
            try:  # noqa: SIM105 (a with block per request costs more than this)
                del self._event.set  # the cycle's own again; no reference cycle left
            except AttributeError:  # someone else took it away already
                pass
        cycle = self._cycle
        if cycle.disconnected:
            self.gone = True
        elif not self.complete and cycle.response_complete:
            self.complete = True  # a uvicorn that completed without setting its event

    async def finish(self) -> None:
        await close_adopted(self)


#: Per type of the object whose method ``receive`` is: whether it is the request
#: cycle of uvicorn's h11 or httptools protocol, as errclass knows it (see
#: ``_UvicornRequest``). Other servers, and a uvicorn that changed, take ``_Exchange``.
_CYCLES: dict[type, bool] = {}
_UVICORN_HTTP1 = ("uvicorn.protocols.http.h11_impl", "uvicorn.protocols.http.httptools_impl")


def _uvicorn_cycle(cycle: object) -> bool:
    cls = type(cycle)
    module = getattr(cls, "__module__", None)
    known = (
        type(module) is str
        and module in _UVICORN_HTTP1
        and cls.__name__ == "RequestResponseCycle"
        and type(getattr(cycle, "disconnected", None)) is bool
        and type(getattr(cycle, "response_complete", None)) is bool
        and callable(getattr(getattr(cycle, "transport", None), "is_closing", None))
        and type(getattr(cycle, "message_event", None)) is asyncio.Event
    )
    if len(_CYCLES) < 64:  # a few types ever: bounded all the same
        _CYCLES[cls] = known
    return known


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _final(kind: str, message: Message, trailers: bool) -> bool:
    """Whether *message* is the last one of the response."""
    if kind in ("http.response.body", "http.response.zerocopysend"):
        return not trailers and not message.get("more_body", False)
    if kind == "http.response.trailers":
        return not message.get("more_trailers", False)
    return kind == "http.response.pathsend"


def _cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_cancellation(e) for e in exc.exceptions)
    cls = type(exc)
    return isinstance(exc, asyncio.CancelledError) or (
        cls.__name__ == "Cancelled" and cls.__module__.startswith("trio")
    )
