"""What the server integrations do as a request ends: record its outcome, and end
the producers it left behind (still suspended, or adopted to be closed).

A middleware decides a *verdict*, what ended the request, records it with
:func:`apply` and, only when the request left producers (``transport.pending``
or ``transport.closers``: the common request leaves none, and pays nothing
here), hands them the same verdict with :func:`end_producers`.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from .. import _client_state
from .._outcome import Outcome
from .._record import Tracker

log = logging.getLogger("errclass")
T = TypeVar("T")

#: What ended a request: an outcome decided by the integration and the exception
#: for the sinks, or ``(None, exc)`` to classify *exc*; ``(None, None)`` is ``ok``.
Verdict = tuple[Outcome | None, BaseException | None]
OK: Verdict = (None, None)  # the handler returned, the response went out, the client stayed


def apply(tracker: Tracker, verdict: Verdict, t0: float, ctx: Any) -> None:
    """Record *verdict* with *tracker*."""
    outcome, exc = verdict
    if outcome is _client_state.TRANSPORT_GONE:
        tracker.client_left(t0, ctx, exc)
    elif outcome is not None:
        assert exc is not None
        tracker.record(outcome, exc, t0, ctx)
    elif exc is not None:
        tracker.fail(exc, t0, ctx)
    else:
        tracker.ok(t0, ctx)


async def end_producers(transport: _client_state.Transport, verdict: Verdict) -> None:
    """Settle the request's suspended producers, then close its adopted ones."""
    if transport.pending:
        settle(transport, verdict)
    await close_adopted(transport)


def settle(transport: _client_state.Transport, verdict: Verdict) -> None:
    """Record the tracked producers of this request that are still suspended
    (Starlette never closes a sync body iterator it stopped; a handler that broke
    out of an ``async for`` or swallowed a failed write leaves its producer at
    ``yield``; so does an app cut off by a deadline): what ended the request
    ended them. A request that ended well left them unfinished: the policy's
    ``generator_exit``. Each is recorded once (``claim()``): by itself, or here."""
    runs, transport.pending = transport.pending, []
    if verdict == OK:
        verdict = (None, GeneratorExit())
    for run in runs:
        if run.claim():
            apply(run.tracker, verdict, run.t0, run.ctx)


async def close_adopted(transport: _client_state.Transport) -> None:
    """Close the producers adopted during the request (``errclass.stream()``,
    ``adopt()``) that are still open, rather than leave them to the garbage collector."""
    closers, transport.closers = transport.closers, []
    for producer in closers:
        await _close(producer)


async def _close(producer: object) -> None:
    try:
        aclose = getattr(producer, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            close = getattr(producer, "close", None)
            if close is not None:
                close()
    except Exception:
        # Without errclass this would surface (or not) in the garbage collector.
        log.warning("closing a producer at the end of its request raised", exc_info=True)


def adopt(producer: T) -> T:
    """Have the middleware close *producer* (``aclose()``/``close()``) when the
    current request ends, if it is still open then. Returns *producer*.

    A body iterator parked at ``yield`` when the client left is otherwise left to
    the garbage collector (Starlette does not close it; an aiohttp handler that
    broke out of its ``async for`` or was cancelled in it does not either);
    adopted, it is closed (and an errclass-wrapped one recorded) before the
    request is over. ``errclass.stream()`` adopts its stream by itself. Outside a
    request served by the ASGI or aiohttp middleware this does nothing.
    """
    _client_state.adopt(producer)
    return producer
