"""aiohttp server middleware: one outcome per request, with what the connection saw.

When the client leaves, ``await resp.write()`` raises
``aiohttp.ClientConnectionResetError`` ("Cannot write to closing transport")
with the default ``handler_cancellation=False``; with
``handler_cancellation=True`` the handler is cancelled at its next ``await``.
Both are ``client_gone``. A cancellation at shutdown (aiohttp cancels the
handlers still running when ``shutdown_timeout`` runs out, and closes their
connections first) is recorded as *shutdown* (default ``deadline_exceeded``),
never as ``client_gone``: :func:`setup` registers the middleware together with
an ``on_shutdown`` hook that tells it the server is stopping. A handler
that swallowed the write error and returned is still ``client_gone`` when the
connection was lost before it returned. ``errclass.track()``/``stream()``
producers inside the handler see the same signal.

As the request ends (before its response is sent, for a plain ``web.Response``),
the producers it left behind are ended as the ASGI middleware ends them, rather
than by the garbage collector later: a tracked generator still suspended (a
handler that broke out of its ``async for``, or swallowed the failed write,
leaves it at ``yield``) is recorded with what ended the request (``client_gone``,
the handler's error, else the policy's ``generator_exit``), once; and
``errclass.stream()`` bodies, and producers handed to :func:`adopt`, still open
are closed (a failing close is logged, never raised into aiohttp).

::

    from errclass.integrations import aiohttp as errclass_aiohttp

    app = web.Application()
    errclass_aiohttp.setup(app)  # or: web.Application(middlewares=[middleware()])
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from aiohttp import web

from .. import _client_state, _trace
from .._options import DEFAULT_LOGGER
from .._outcome import Reason
from .._policy import Policy
from ._endpoints import Endpoints, shutdown_outcome
from ._request_end import OK, Verdict, adopt, apply, end_producers

__all__ = ["adopt", "middleware", "setup"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_OVERFLOW = "errclass.aiohttp.other"  # the producer of handlers past MAX_ENDPOINTS


def middleware(
    *sinks: object,
    name: str | None = None,
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
    shutdown: Reason | str = Reason.DEADLINE_EXCEEDED,
) -> Any:
    """An aiohttp middleware recording one outcome per request.

    *sinks*, *policy* and *logger* are those of ``errclass.track()``. The
    producer name is *name*, else the handler's ``module.qualname``. A raised
    ``web.HTTPException`` (a redirect, a 404, even a 500 the handler chose) is
    the handler's answer: ``ok``. Prefer :func:`setup`, which also tells the
    middleware when the server shuts down.
    """
    shutdown_as = shutdown_outcome(shutdown)
    endpoints = Endpoints(*sinks, name=name, policy=policy, logger=logger, overflow=_OVERFLOW)
    stopping = False

    async def on_shutdown(app: web.Application) -> None:
        nonlocal stopping
        stopping = True

    def ending(transport: _client_state.Transport, exc: BaseException | None) -> Verdict:
        """What ended the request (see ``_request_end``)."""
        if exc is None:
            if transport.client_gone():
                # The connection was lost before the handler returned (it swallowed
                # the failed write, or its plain response can no longer be sent).
                return _client_state.TRANSPORT_GONE, _client_state.ClientDisconnected()
            return OK
        if isinstance(exc, web.HTTPException):
            return OK  # a raised response is the handler's deliberate answer
        if isinstance(exc, asyncio.CancelledError) and (stopping or not transport.client_gone()):
            # The server cancelled us: at shutdown, or with the connection still open.
            return shutdown_as, exc
        return None, exc

    @web.middleware
    async def errclass_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        tracker = endpoints.tracker(getattr(request.match_info, "handler", handler))
        t0 = perf_counter() if tracker.timed else 0.0
        ctx = _trace.capture() if tracker.traced else None
        transport = _client_state.Transport(probe=lambda: request.transport is None)
        raised: BaseException | None = None
        # The transport is published without a `with` block: one about doubled the
        # middleware's cost in bench_aiohttp's in-process row.
        token = _client_state.publish(transport)
        try:
            return await handler(request)
        except BaseException as exc:
            raised = exc
            raise
        finally:
            _client_state.unpublish(token)
            verdict = ending(transport, raised)
            apply(tracker, verdict, t0, ctx)
            if transport.pending or transport.closers:
                # Producers it left suspended or adopted: ended now, while the
                # request's verdict is known, not by the garbage collector later.
                await end_producers(transport, verdict)

    errclass_middleware.on_shutdown = on_shutdown  # type: ignore[attr-defined]
    return errclass_middleware


def setup(
    app: web.Application,
    *sinks: object,
    name: str | None = None,
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
    shutdown: Reason | str = Reason.DEADLINE_EXCEEDED,
) -> None:
    """Add :func:`middleware` to *app* (outermost) and register its ``on_shutdown``
    hook, so that handlers cancelled at shutdown are not taken for clients leaving."""
    if not isinstance(app, web.Application):
        raise TypeError(f"setup() takes an aiohttp.web.Application, got {app!r}")
    mw = middleware(*sinks, name=name, policy=policy, logger=logger, shutdown=shutdown)
    app.middlewares.insert(0, mw)
    app.on_shutdown.append(mw.on_shutdown)
