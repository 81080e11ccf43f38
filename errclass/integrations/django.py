"""Django: name each request's producer after its view, in ``MIDDLEWARE``.

errclass sees a disconnect where the server reports it, so the recording
itself is the ASGI or WSGI middleware around Django's application; this
class, in ``settings.MIDDLEWARE``, tells it which view served the request::

    # settings.py
    MIDDLEWARE = ["errclass.integrations.django.ErrclassMiddleware", ...]

    # asgi.py (or wsgi.py with errclass.integrations.wsgi and get_wsgi_application)
    from django.core.asgi import get_asgi_application
    from errclass.integrations.asgi import ErrclassMiddleware

    application = ErrclassMiddleware(get_asgi_application())

The producer is the resolved view's ``module.qualname`` (what
``resolver_match._func_path`` says, as Django's own tooling shows it);
requests that match no URL pattern share ``errclass.unmatched``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._routes import ROUTE_KEY, UNMATCHED, log

__all__ = ["ErrclassMiddleware"]

_MISSING = (
    "errclass.integrations.django.ErrclassMiddleware only names the route: wrap the "
    "application in asgi.py/wsgi.py with errclass.integrations.asgi/wsgi.ErrclassMiddleware "
    "too, or nothing is recorded"
)
_warned: list[bool] = []


class ErrclassMiddleware:
    """Django middleware (sync and async) that names the request's producer."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        import inspect

        self.get_response = get_response
        self._async = inspect.iscoroutinefunction(get_response)
        if self._async:
            from asgiref.sync import markcoroutinefunction

            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        _carrier(request)[ROUTE_KEY] = UNMATCHED
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        _carrier(request)[ROUTE_KEY] = UNMATCHED
        return await self.get_response(request)

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        match = getattr(request, "resolver_match", None)
        name = getattr(match, "_func_path", None)
        if name:
            _carrier(request)[ROUTE_KEY] = name


def _carrier(request: Any) -> dict[str, Any]:
    """The scope (ASGI) or environ (WSGI) that errclass's middleware reads."""
    carrier = getattr(request, "scope", None)
    if carrier is None:
        carrier = request.environ
    if ROUTE_KEY not in carrier and not _warned:
        _warned.append(True)
        log.warning(_MISSING)
    return carrier  # type: ignore[no-any-return]
