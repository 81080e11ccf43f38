"""What the transport told an integration about the current request's client.

Some servers never tell the producer that its client left: an ASGI ``send()``
after a disconnect is a silent no-op, so a fast producer completes "normally".
An integration that sees the server's own signal (``http.disconnect``) publishes
it here for the request it serves; every producer recording in that context
(``track()``, ``stream()``) then records ``client_gone`` instead of ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._outcome import Outcome, Reason


class ClientDisconnected(Exception):
    """Handed to sinks for a stream that completed after the server reported
    that its client left. Never raised."""


#: The outcome of a producer that finished after its client left.
TRANSPORT_GONE = Outcome(Reason.CLIENT_GONE, "errclass.ClientDisconnected", "transport_disconnect")


class Transport:
    """One request's connection as an integration sees it.

    ``gone`` turns True when the server reports that the client left before the
    response completed; *probe*, if given, is asked as well (e.g. "is the
    connection's transport gone?"). ``closers`` are producers of this request to
    close when it ends, rather than leave to the garbage collector.
    """

    __slots__ = ("closers", "gone", "probe")

    def __init__(self, probe: Callable[[], bool] | None = None) -> None:
        self.gone = False
        self.probe = probe
        self.closers: list[object] = []

    def client_gone(self) -> bool:
        if self.gone:
            return True
        if self.probe is None:
            return False
        try:
            return bool(self.probe())
        except Exception:  # a broken probe must not break recording
            return False


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


@contextmanager
def serving(transport: Transport) -> Iterator[Transport]:
    """Publish *transport* to producers running in this context (and tasks it spawns)."""
    token = _ACTIVE.set(transport)
    try:
        yield transport
    finally:
        _ACTIVE.reset(token)
