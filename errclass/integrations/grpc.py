"""gRPC server interceptors (sync and ``grpc.aio``): one outcome per RPC.

A gRPC handler never sees the client leave as an exception of its own: a sync
streaming handler is dropped (``GeneratorExit``) and ``context.is_active()``
turns False; a ``grpc.aio`` handler is cancelled (``CancelledError``). So the
outcome comes from the RPC itself:

* the RPC was cancelled or its deadline passed while the handler ran:
  ``deadline_exceeded`` when ``context.time_remaining()`` is 0, else
  ``client_gone``;
* ``context.abort(code, details)`` is the application's answer, not a stream
  failure: by default ``ok``, except the codes OpenTelemetry's gRPC server
  conventions count as server errors (``UNKNOWN``, ``UNIMPLEMENTED``,
  ``INTERNAL``, ``UNAVAILABLE``, ``DATA_LOSS`` -> ``write_failed``;
  ``DEADLINE_EXCEEDED`` -> ``deadline_exceeded``). Pass ``aborted=`` to map
  codes yourself;
* any other exception is a handler error, classified by the policy; a
  ``client_gone`` verdict becomes ``write_failed``, because the client of this
  RPC is demonstrably still there (the peer that left was one of yours);
* otherwise ``ok``.

Producers are named for the full method (``/pkg.Service/Method``, a closed set
defined by your services) unless ``name=`` is given.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import grpc
import grpc.aio

from .._deadline import Expiry, watching
from .._options import DEFAULT_LOGGER
from .._outcome import Outcome, Reason
from .._policy import Policy
from .._record import Tracker
from ._endpoints import Endpoints

__all__ = ["AioServerInterceptor", "RpcTerminated", "ServerInterceptor", "expired", "status_reason"]

# OpenTelemetry's gRPC server conventions: these codes are errors of the server.
_SERVER_ERRORS = frozenset({"UNKNOWN", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})
_NEVER = 1e9  # time_remaining() without a deadline: ~9.2e18 (sync) or None (aio)


def status_reason(code: grpc.StatusCode) -> Reason:
    """The default reason of a deliberate ``context.abort(code, ...)``."""
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Reason.DEADLINE_EXCEEDED
    if code.name in _SERVER_ERRORS:
        return Reason.WRITE_FAILED
    return Reason.OK


class RpcTerminated(Exception):
    """Handed to sinks when the RPC ended (cancel, deadline) while the handler
    was still producing and no exception of its own says so."""


class _Interceptor:
    """What the sync and aio interceptors share: options and one tracker per method."""

    def __init__(
        self,
        *sinks: object,
        name: str | None = None,
        policy: Policy | None = None,
        logger: logging.Logger | str | None = DEFAULT_LOGGER,
        aborted: Callable[[grpc.StatusCode], Reason] = status_reason,
    ) -> None:
        if not callable(aborted):
            raise TypeError(f"aborted= must map a grpc.StatusCode to a Reason, got {aborted!r}")
        self._endpoints = Endpoints(
            *sinks, name=name, policy=policy, logger=logger, overflow="errclass.grpc.other"
        )
        self._aborted = aborted

    def _tracker(self, method: str) -> Tracker:
        return self._endpoints.tracker(method)


class _Call:
    """One RPC: records exactly once, whoever notices the end first."""

    __slots__ = ("_done", "_lock", "aborted", "context", "ctx", "t0", "tracker")

    def __init__(
        self, tracker: Tracker, context: Any, aborted: Callable[[grpc.StatusCode], Reason]
    ) -> None:
        self.tracker, self.context, self.aborted = tracker, context, aborted
        self.t0, self.ctx = tracker.start()
        self._done = False
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            done, self._done = self._done, True
        return not done

    def finish(self, exc: BaseException | None, *, gone: bool) -> None:
        """The handler ended with *exc* (``None``: returned); *gone*: the RPC is over."""
        if not self._claim():
            return
        tr, t0, ctx = self.tracker, self.t0, self.ctx
        try:
            if exc is not None and _is_abort(exc, self.context):
                code = self.context.code()
                reason = self.aborted(code)
                tr.record(Outcome(Reason(reason), code.name, "grpc_abort"), exc, t0, ctx)
            elif gone:
                self._departed(exc)
            elif exc is None:
                tr.ok(t0, ctx)
            else:
                outcome = tr.policy.classify(exc, tr.role)
                if outcome.reason is Reason.CLIENT_GONE:
                    outcome = Outcome(Reason.WRITE_FAILED, outcome.error_type, outcome.rule)
                tr.record(outcome, exc, t0, ctx)
        except Exception:  # a broken context must not reach the handler
            logging.getLogger("errclass").exception("errclass could not classify a gRPC call")

    def _departed(self, exc: BaseException | None) -> None:
        """Cancelled or past its deadline: ``time_remaining()`` tells which."""
        code = "DEADLINE_EXCEEDED" if expired(self.context) else "CANCELLED"
        reason = Reason.DEADLINE_EXCEEDED if code == "DEADLINE_EXCEEDED" else Reason.CLIENT_GONE
        self.tracker.record(
            Outcome(reason, code, "grpc_" + code.lower()),
            exc or RpcTerminated(code),
            self.t0,
            self.ctx,
        )


# The server's deadline is the client's plus the time the request took to arrive (it
# starts from the grpc-timeout header it received), so the client's own cancel at its
# deadline reaches the server while a little time still remains there, more so on a
# loaded host. A cancel this close to the deadline is the deadline.
_DEADLINE_SLACK = 0.25


def expired(context: Any) -> bool:
    """True when the RPC's deadline has passed, or is within ``_DEADLINE_SLACK``
    seconds: the client's deadline, seen on the server's clock."""
    remaining = context.time_remaining()
    return remaining is not None and remaining <= _DEADLINE_SLACK


def _is_abort(exc: BaseException, context: Any) -> bool:
    if isinstance(exc, grpc.aio.AbortError):
        return True
    # The sync server raises a bare Exception() from abort() and marks its state.
    state = getattr(context, "_state", None)
    return type(exc) is Exception and bool(getattr(state, "aborted", False))


def _replace(handler: Any, **behaviors: Any) -> Any:
    return (
        handler._replace(**behaviors)
        if hasattr(handler, "_replace")
        else _rebuild(handler, behaviors)
    )


def _rebuild(handler: Any, behaviors: dict[str, Any]) -> Any:
    factory = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    ((kind, behavior),) = behaviors.items()
    return factory[kind](behavior, handler.request_deserializer, handler.response_serializer)


def _kind(handler: Any) -> str:
    return ("stream_" if handler.request_streaming else "unary_") + (
        "stream" if handler.response_streaming else "unary"
    )


# -- sync ---------------------------------------------------------------------


class ServerInterceptor(_Interceptor, grpc.ServerInterceptor):  # type: ignore[misc]
    """Record one outcome per RPC of a sync ``grpc.server``::

        server = grpc.server(pool, interceptors=[ServerInterceptor()])

    *sinks*, *policy* and *logger* are those of ``errclass.track()``.
    """

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = _kind(handler)
        behavior = getattr(handler, kind)
        tracker = self._tracker(handler_call_details.method)
        wrap = _sync_stream if handler.response_streaming else _sync_unary
        return _replace(handler, **{kind: wrap(behavior, tracker, self._aborted)})


def _sync_unary(behavior: Any, tracker: Tracker, aborted: Any) -> Callable[..., Any]:
    def call(request: Any, context: Any) -> Any:
        rpc = _Call(tracker, context, aborted)
        try:
            response = behavior(request, context)
        except BaseException as e:
            rpc.finish(e, gone=not context.is_active())
            raise
        rpc.finish(None, gone=not context.is_active())
        return response

    return call


def _sync_stream(behavior: Any, tracker: Tracker, aborted: Any) -> Callable[..., Any]:
    def call(request: Any, context: Any) -> Any:
        rpc = _Call(tracker, context, aborted)
        # Fires when the RPC ends; records at once if the handler is still producing.
        context.add_callback(lambda: rpc.finish(None, gone=True))
        try:
            responses = behavior(request, context)
        except BaseException as e:
            rpc.finish(e, gone=not context.is_active())
            raise
        return _sync_watch(iter(responses), rpc)

    return call


def _sync_watch(responses: Iterator[Any], rpc: _Call) -> Iterator[Any]:
    # ``yield from`` forwards close(): the server dropping us closes the producer.
    try:
        yield from responses
    except GeneratorExit as e:
        rpc.finish(e, gone=True)
        raise
    except BaseException as e:
        rpc.finish(e, gone=not rpc.context.is_active())
        raise
    rpc.finish(None, gone=False)


# -- grpc.aio -------------------------------------------------------------------


class AioServerInterceptor(_Interceptor, grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Record one outcome per RPC of a ``grpc.aio.server``::

        server = grpc.aio.server(interceptors=[AioServerInterceptor()])

    Wraps ``async def`` handlers and async generator handlers; sync handlers
    run by the aio server in a thread pool are passed through untouched.
    """

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        kind = _kind(handler)
        behavior = getattr(handler, kind)
        tracker = self._tracker(handler_call_details.method)
        if inspect.isasyncgenfunction(behavior):
            return _replace(handler, **{kind: _aio_stream(behavior, tracker, self._aborted)})
        if inspect.iscoroutinefunction(behavior):
            return _replace(handler, **{kind: _aio_call(behavior, tracker, self._aborted)})
        return handler


def _aio_finish(rpc: _Call, exc: BaseException | None) -> None:
    if isinstance(exc, asyncio.CancelledError):
        # Cancelled by the server: the client left, or the deadline passed.
        with watching(Expiry(partial(expired, rpc.context))):
            if rpc._claim():
                rpc.tracker.fail(exc, rpc.t0, rpc.ctx)
        return
    rpc.finish(exc, gone=False)


def _aio_call(behavior: Any, tracker: Tracker, aborted: Any) -> Callable[..., Any]:
    async def call(request: Any, context: Any) -> Any:
        rpc = _Call(tracker, context, aborted)
        try:
            response = await behavior(request, context)
        except BaseException as e:
            _aio_finish(rpc, e)
            raise
        _aio_finish(rpc, None)
        return response

    return call


def _aio_stream(behavior: Any, tracker: Tracker, aborted: Any) -> Callable[..., Any]:
    async def call(request: Any, context: Any) -> AsyncIterator[Any]:
        rpc = _Call(tracker, context, aborted)
        # The server may cancel its task while it awaits a write, outside this
        # generator: the done callback records then, not when the GC closes us.
        context.add_done_callback(lambda _: rpc.finish(None, gone=True))
        responses = behavior(request, context)
        try:
            async for item in responses:
                yield item
        except GeneratorExit as e:
            rpc.finish(e, gone=True)
            raise
        except BaseException as e:
            _aio_finish(rpc, e)
            raise
        finally:
            await responses.aclose()
        _aio_finish(rpc, None)

    return call
