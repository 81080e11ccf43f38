"""WSGI middleware: one outcome per response, from what the server does to the body.

WSGI servers (gunicorn, werkzeug, wsgiref) swallow the ``BrokenPipeError`` of a
departed client and only call the body's ``close()``; the producer itself sees
at most a ``GeneratorExit``. So the middleware watches the body:

* exhausted, then closed: ``ok``;
* an exception from the producer: classified by the policy;
* closed before it was exhausted: ``client_gone`` (the policy's
  ``generator_exit`` reason);
* closed while the server handles an exception (its own failed write, a socket
  timeout): that exception is classified, so a final write that failed after
  the producer finished is not ``ok``;
* under gunicorn, ``SystemExit(1)`` (the worker timeout; gunicorn's SIGABRT
  handler calls ``sys.exit(1)``): ``deadline_exceeded``, and the exception
  propagates unchanged.

The outcome is recorded when the server calls ``close()`` (PEP 3333 requires
it), or at garbage collection if a server never does.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from time import perf_counter
from typing import Any

from .. import _trace
from .._options import DEFAULT_LOGGER
from .._outcome import Outcome, Reason
from .._policy import Policy
from .._record import Tracker
from ._endpoints import Endpoints
from ._routes import ROUTE_KEY, route

__all__ = ["ErrclassMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

# gunicorn's worker timeout, seen by the request it interrupted (Tracker.record
# folds it into client_gone under fold_deadlines=True).
_OVERFLOW = "errclass.wsgi.other"  # the producer of routes past MAX_ENDPOINTS
WORKER_TIMEOUT = Outcome(Reason.DEADLINE_EXCEEDED, "SystemExit", "gunicorn_worker_timeout")


class ErrclassMiddleware:
    """Wrap a WSGI app so that every response records exactly one outcome::

        app = ErrclassMiddleware(app, name="downloads")

    *sinks*, *policy* and *logger* are those of ``errclass.track()``; *name* is
    the producer label (default: the route a framework layer names, Flask's or
    Django's, else the app's ``module.qualname``). The app's return value is
    wrapped in an iterable that forwards ``close()``.
    """

    __slots__ = ("_app", "_endpoints", "_traced")

    def __init__(
        self,
        app: WSGIApp,
        *sinks: object,
        name: str | None = None,
        policy: Policy | None = None,
        logger: logging.Logger | str | None = DEFAULT_LOGGER,
    ) -> None:
        if not callable(app):
            raise TypeError(f"ErrclassMiddleware wraps a WSGI callable, got {app!r}")
        self._app = app
        self._endpoints = Endpoints(
            *sinks, name=name, policy=policy, logger=logger, overflow=_OVERFLOW
        )
        self._traced = self._endpoints.tracker(app).traced  # the same sinks for every route

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # The route is known once the app has routed the request (during the call).
        environ.setdefault(ROUTE_KEY, None)
        t0 = perf_counter()
        ctx = _trace.capture() if self._traced else None
        under_gunicorn = "gunicorn.socket" in environ
        try:
            result = self._app(environ, start_response)
        except BaseException as e:
            _record(self._endpoints.tracker(route(environ, self._app)), e, t0, ctx, under_gunicorn)
            raise
        tracker = self._endpoints.tracker(route(environ, self._app))
        return _Body(result, tracker, t0, ctx, under_gunicorn)


class _Body:
    """The app's iterable, watched: records once, forwards ``close()`` once."""

    __slots__ = ("_ctx", "_done", "_exhausted", "_gunicorn", "_it", "_result", "_t0", "_tracker")

    def __init__(
        self, result: Iterable[bytes], tracker: Tracker, t0: float, ctx: Any, gunicorn: bool
    ) -> None:
        self._result, self._tracker, self._t0, self._ctx = result, tracker, t0, ctx
        self._gunicorn = gunicorn
        self._it: Generator[bytes, None, None] | None = None
        self._exhausted = self._done = False

    def __iter__(self) -> Iterator[bytes]:
        if self._it is None:
            self._it = self._iterate()
        return self._it

    def _iterate(self) -> Generator[bytes, None, None]:
        # A plain for loop, not ``yield from``: closing this generator must not
        # close the app's iterator; close() forwards to the iterable exactly once.
        try:
            for item in self._result:  # noqa: UP028
                yield item
        except GeneratorExit:
            raise
        except BaseException as e:
            self._finish(e)
            raise
        self._exhausted = True

    def close(self) -> None:
        # What the server is handling right now (its failed write, a timeout,
        # gunicorn's SystemExit) says why it closes us.
        active = sys.exception()
        try:
            if self._it is not None:
                self._it.close()
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        except BaseException as e:
            self._finish(e)
            raise
        self._finish(active)

    def _finish(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if exc is None and not self._exhausted:
            exc = GeneratorExit()  # closed early: the policy's generator_exit reason
        if exc is None:
            self._tracker.ok(self._t0, self._ctx)
        else:
            _record(self._tracker, exc, self._t0, self._ctx, self._gunicorn)

    def __del__(self) -> None:
        if not self._done:  # a server that never called close()
            self._finish(None)


def _record(tracker: Tracker, exc: BaseException, t0: float, ctx: Any, gunicorn: bool) -> None:
    if gunicorn and isinstance(exc, SystemExit) and exc.code == 1:
        tracker.record(WORKER_TIMEOUT, exc, t0, ctx)
    else:
        tracker.fail(exc, t0, ctx)
