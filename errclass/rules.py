"""The default rule table (``reference/disconnects.md``, rows 1-14) and opt-in rules.

Framework classes are named, not imported: a rule for ``"httpx.HTTPError"``
matches any class called ``HTTPError`` from the ``httpx`` package, so nothing
here pulls in a framework. Compose your own table from these::

    errclass.Policy(rules=[my_rule, *errclass.rules.DEFAULT])
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import http.client
import ssl
import sys

from . import _deadline
from ._outcome import R_DEADLINE, R_FAILED, R_GONE, Reason, Role
from ._rule import EXACT, PASS_THROUGH, Exact, Rule, WalkTable, scan, walk

__all__ = [
    "CANCELLED",
    "CLOSED_OWN_RESOURCE",
    "CLOSED_RESOURCE_IS_CLIENT_GONE",
    "CONNECTION_BROKEN",
    "CONNECTION_BROKEN_IN_CHAIN",
    "DEFAULT",
    "DISCONNECT_CLASS",
    "FUTURE_CANCELLED",
    "GRPC_STATUS",
    "HTTP_STATUS",
    "INTERRUPT",
    "NOT_CONNECTED",
    "PEER_TIMED_OUT",
    "PROTOCOL_ERROR",
    "TIMEOUT",
    "UPSTREAM_CLIENT",
    "UVLOOP_CLOSED",
]


# 1. Cancellation: the client left, unless a deadline we know of expired.
CANCELLED = Rule(
    _deadline.OnExpiry(R_DEADLINE, R_GONE),
    types=asyncio.CancelledError,
    names=("trio.Cancelled",),
    name="cancelled",
)

# 3. Cancelled futures.
FUTURE_CANCELLED = Rule(
    Reason.CLIENT_GONE,
    types=concurrent.futures.CancelledError,
    names=("grpc.FutureCancelledError",),
    name="future_cancelled",
)

_GRPC_CODES = {
    "DEADLINE_EXCEEDED": Reason.DEADLINE_EXCEEDED,
    "CANCELLED": Reason.CLIENT_GONE,
}


def _grpc_status(exc: BaseException, role: Role) -> Reason | None:
    code_fn = getattr(exc, "code", None)
    if not callable(code_fn):
        return None
    code = getattr(code_fn(), "name", None)
    if code is None:
        return None
    if code == "UNAVAILABLE":
        return Reason.CLIENT_GONE if role == "consumer" else Reason.WRITE_FAILED
    return _GRPC_CODES.get(code, Reason.WRITE_FAILED)


# 4. gRPC errors by status code.
GRPC_STATUS = Rule(_grpc_status, names=("grpc.RpcError",), name="grpc_status")

_TIMEOUT_NAMES = (
    "trio.TooSlowError",
    "httpx.TimeoutException",
    "httpcore.TimeoutException",
    "urllib3.TimeoutError",
    "requests.Timeout",
    "aiohttp.ServerTimeoutError",
    "aiohttp.SocketTimeoutError",
    "aiohttp.ConnectionTimeoutError",
    "sse_starlette.SendTimeoutError",
)

# 6. Timeouts; TimeoutError with ETIMEDOUT is the kernel giving up on the peer.
PEER_TIMED_OUT = Rule(
    Reason.CLIENT_GONE, types=TimeoutError, errnos=errno.ETIMEDOUT, name="peer_timed_out"
)
TIMEOUT = Rule(Reason.DEADLINE_EXCEEDED, types=TimeoutError, names=_TIMEOUT_NAMES, name="timeout")


def _timeout_in_chain(cls: type) -> Reason | Exact | None:
    if not TIMEOUT.accepts_type(cls):
        return None
    # A TimeoutError's errno tells a deadline from the kernel giving up on the peer.
    return EXACT if PEER_TIMED_OUT.accepts_type(cls) else R_DEADLINE


_TIMEOUTS: WalkTable[Reason] = WalkTable(_timeout_in_chain)


def _upstream(exc: BaseException, role: Role) -> Reason:
    try:
        found = scan(exc, _TIMEOUTS)
    except PASS_THROUGH:
        raise
    except BaseException:  # a hostile link: the full walk contains it
        found = EXACT
    if found is EXACT:
        found = next(
            (
                R_DEADLINE
                for member in walk(exc)
                if TIMEOUT.matches(member) and not PEER_TIMED_OUT.matches(member)
            ),
            None,
        )
    if found is not None:
        return found
    return R_FAILED if role == "producer" else R_GONE  # the Reason.X lookup is slow


# 7 (first part). aiohttp's server write to a departed client raises this
# ClientError subclass; it must win over the upstream-client rule below.
_AIOHTTP_RESET = Rule(
    Reason.CLIENT_GONE, names=("aiohttp.ClientConnectionResetError",), name="disconnect_class"
)

# 5 (first part). An error status the upstream answered with (raise_for_status()):
# a deliberate answer, not a peer that left, in either role.
HTTP_STATUS = Rule(
    Reason.WRITE_FAILED,
    names=("httpx.HTTPStatusError", "requests.HTTPError", "aiohttp.ClientResponseError"),
    name="http_status",
)

# 5. Errors of HTTP client libraries: our upstream broke (or, as a consumer, our peer).
# (httpx.StreamError, e.g. StreamClosed, is not one: it is our own misuse, row 14.)
UPSTREAM_CLIENT = Rule(
    _upstream,
    types=http.client.HTTPException,
    names=(
        "httpx.HTTPError",
        "httpcore.*",
        "requests.RequestException",
        "urllib3.HTTPError",
        "aiohttp.ClientError",
    ),
    name="upstream_client",
)

_CLEAN_WS_CLOSE = frozenset({1000, 1001, 1005, 1006})

# 7. Classes that mean "the peer went away".
DISCONNECT_CLASS = Rule(
    Reason.CLIENT_GONE,
    types=(asyncio.IncompleteReadError, ssl.SSLEOFError, ssl.SSLZeroReturnError),
    names=(
        "starlette.ClientDisconnect",
        "uvicorn.ClientDisconnected",
        "anyio.BrokenResourceError",
        "anyio.EndOfStream",
        "trio.BrokenResourceError",
        "werkzeug.ClientDisconnected",
    ),
    name="disconnect_class",
)
_WEBSOCKET_CLOSED = Rule(
    Reason.CLIENT_GONE,
    names=("starlette.WebSocketDisconnect",),
    when=lambda e: getattr(e, "code", None) in _CLEAN_WS_CLOSE,
    name="disconnect_class",
)

_BROKEN = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

# 8. The kernel says the connection is gone.
CONNECTION_BROKEN = Rule(Reason.CLIENT_GONE, types=_BROKEN, name="connection_broken")

_NOTCONN = [errno.ENOTCONN, errno.ENETRESET, 10057]
if sys.platform == "darwin":  # macOS reports a send on a dying socket as EPROTOTYPE
    _NOTCONN.append(errno.EPROTOTYPE)

# 9. Not connected (any more).
NOT_CONNECTED = Rule(
    Reason.CLIENT_GONE, types=OSError, errnos=tuple(_NOTCONN), name="not_connected"
)


def _uvloop_closed(exc: BaseException) -> bool:
    msg = str(exc)
    return "closed=True" in msg and "the handler is closed" in msg


# 10. uvloop's write on a closed transport.
UVLOOP_CLOSED = Rule(
    Reason.CLIENT_GONE, types=RuntimeError, when=_uvloop_closed, name="uvloop_closed"
)

# 11. Anything caused by a broken connection.
CONNECTION_BROKEN_IN_CHAIN = Rule(
    Reason.CLIENT_GONE, types=_BROKEN, chain=True, name="connection_broken_in_chain"
)


def _closed_file(exc: BaseException) -> bool:
    return "I/O operation on closed file" in str(exc)


# 12. Our own object was closed: a fault of ours.
CLOSED_OWN_RESOURCE = Rule(
    Reason.WRITE_FAILED,
    names=("anyio.ClosedResourceError", "trio.ClosedResourceError"),
    name="closed_own_resource",
)
_CLOSED_FILE = Rule(
    Reason.WRITE_FAILED, types=ValueError, when=_closed_file, name="closed_own_resource"
)
_BAD_FD = Rule(Reason.WRITE_FAILED, types=OSError, errnos=errno.EBADF, name="closed_own_resource")

#: Opt-in (pass in ``before=``): for frameworks that close the writer when the
#: client leaves, a closed resource means the client is gone.
CLOSED_RESOURCE_IS_CLIENT_GONE = Rule(
    Reason.CLIENT_GONE,
    names=("anyio.ClosedResourceError", "trio.ClosedResourceError"),
    name="closed_resource_client_gone",
)

# Protocol errors of the HTTP stack we serve with: named so error.type keeps them.
PROTOCOL_ERROR = Rule(
    Reason.WRITE_FAILED,
    names=("h11.LocalProtocolError", "h11.RemoteProtocolError"),
    name="protocol_error",
)

# 13. Interpreter exits: a server-side stop, never a client disconnect.
INTERRUPT = Rule(Reason.WRITE_FAILED, types=(SystemExit, KeyboardInterrupt), name="interrupt")

#: The default table, in order. Row 2 (GeneratorExit) is ``Policy(generator_exit=)``
#: and row 14 (anything else) is ``Policy(default=)``.
DEFAULT: tuple[Rule, ...] = (
    CANCELLED,
    FUTURE_CANCELLED,
    GRPC_STATUS,
    _AIOHTTP_RESET,
    HTTP_STATUS,
    UPSTREAM_CLIENT,
    PEER_TIMED_OUT,
    TIMEOUT,
    DISCONNECT_CLASS,
    _WEBSOCKET_CLOSED,
    CONNECTION_BROKEN,
    NOT_CONNECTED,
    UVLOOP_CLOSED,
    CONNECTION_BROKEN_IN_CHAIN,
    CLOSED_OWN_RESOURCE,
    _CLOSED_FILE,
    _BAD_FD,
    PROTOCOL_ERROR,
    INTERRUPT,
)
