"""What the transport told an integration about the current request's client.

Some servers never tell the producer that its client left: an ASGI ``send()``
after a disconnect is a silent no-op, so a fast producer completes "normally".
An integration that sees the server's own signal (``http.disconnect``) publishes
it here for the request it serves; every producer recording in that context
(``track()``, ``stream()``) then records ``client_gone`` instead of ``ok``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ._outcome import Outcome, Reason


class ClientDisconnected(Exception):
    """Handed to sinks for a stream that completed after the server reported
    that its client left. Never raised."""


#: The outcome of a producer that finished after its client left.
TRANSPORT_GONE = Outcome(Reason.CLIENT_GONE, "errclass.ClientDisconnected", "transport_disconnect")


#: One entry per Transport alive: appended when one is made, taken when it is
#: freed. A context that holds a transport keeps it alive, so while this is empty
#: ``active()`` is None in every context, and a success need not ask (a list:
#: append and pop are atomic across threads).
alive: list[None] = []


class Transport:
    """One request's connection as an integration sees it.

    ``gone`` turns True when the server reports that the client left before the
    response completed; *probe*, if given, is asked as well (e.g. "is the
    connection's transport gone?"). ``closers`` are producers of this request to
    close when it ends, rather than leave to the garbage collector; ``pending``
    the tracked producers started during it that have not recorded yet.
    ``deadline`` turns True when an ``errclass.deadline()`` expired during it.
    ``complete`` turns True when the response completed: from then on, the
    probe no longer speaks for this request.
    """

    __slots__ = ("closers", "complete", "deadline", "gone", "pending", "probe")

    def __init__(self, probe: Callable[[], bool] | None = None) -> None:
        alive.append(None)
        self.gone = False
        self.deadline = False
        self.complete = False
        self.probe = probe
        self.closers: list[object] = []
        self.pending: list[Pending] = []

    def __del__(self, _pop: Callable[[], None] = alive.pop) -> None:
        # Bound when the class is made: at shutdown, the module's globals may be gone.
        _pop()

    def client_gone(self) -> bool:
        if self.gone:
            return True
        if self.probe is None or self.complete:
            return False
        try:
            return bool(self.probe())
        except Exception:  # a broken probe must not break recording
            return False


class Pending:
    """A tracked producer's run inside a request: it records once, either itself
    (it finished) or when the request ends while it is still suspended (a
    framework that never closes the generator it stopped iterating)."""

    __slots__ = ("_done", "_lock", "ctx", "t0", "tracker")

    def __init__(self, tracker: Any, t0: float, ctx: Any) -> None:
        self.tracker, self.t0, self.ctx = tracker, t0, ctx
        self._done = False
        self._lock = threading.Lock()  # a sync producer may finish in a worker thread

    def claim(self) -> bool:
        """True exactly once: for whoever records this run."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            return True


def pending(tracker: Any, t0: float, ctx: Any) -> Pending | None:
    """Register a producer run with the request served in this context, if any."""
    transport = _ACTIVE.get()
    if transport is None:
        return None
    run = Pending(tracker, t0, ctx)
    transport.pending.append(run)
    return run


_ACTIVE: ContextVar[Transport | None] = ContextVar("errclass_transport", default=None)


#: The transport of the request being served in this context, or None (a C call:
#: ``Tracker.ok`` asks it on every recording).
active = _ACTIVE.get


def adopt(producer: object) -> None:
    """Have the integration serving this request close *producer* when the request
    ends (if it is still open then), instead of leaving it to the garbage collector."""
    transport = active()
    if transport is not None:
        transport.closers.append(producer)


#: Publish a transport to the producers running in this context (and the tasks it
#: spawns; returns the token), and take it back: C calls, for a middleware's per-request
#: path (a ``with`` block there costs more than the rest of the publishing).
publish = _ACTIVE.set
unpublish = _ACTIVE.reset
