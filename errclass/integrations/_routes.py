"""The producer name of a request: its route, as the framework's own tooling names it.

The framework layers (Django, Flask, Quart, Falcon) put the matched route in
the request's ASGI scope or WSGI environ under ``ROUTE_KEY``, and
``UNMATCHED`` when no route matched; Starlette, FastAPI and Litestar put their
endpoint in the scope themselves. Every name comes from the application's
route table, so the set is closed; all unmatched paths (404s, scanners) share
``UNMATCHED``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("errclass")

#: The scope/environ key under which a framework layer leaves the route's name
#: (the ASGI/WSGI middleware sets it to None first: "errclass is watching").
ROUTE_KEY = "errclass.route"
#: The one producer name of every request no route matched.
UNMATCHED = "errclass.unmatched"

# Applications that route in the scope themselves: no endpoint there means no match.
_SCOPE_ROUTERS = ("starlette.", "fastapi.", "litestar.")


def route(request: Mapping[str, Any], app: object) -> object:
    """What names *request*: a route name, an endpoint object (``module.qualname``),
    ``UNMATCHED``, or *app* itself for an application errclass cannot see route."""
    name = request.get(ROUTE_KEY)
    if name is not None:
        return name
    endpoint = request.get("endpoint")  # Starlette, FastAPI
    if endpoint is not None:
        return endpoint
    handler = request.get("route_handler")  # Litestar
    if handler is not None:
        return getattr(handler, "fn", handler)
    if f"{type(getattr(app, '__self__', app)).__module__}.".startswith(_SCOPE_ROUTERS):
        return UNMATCHED
    return app


class AppExtension:
    """The Flask-style extension both Flask and Quart take: ``Ext(app)`` or
    ``Ext().init_app(app)`` wraps the app's WSGI/ASGI callable in errclass's
    middleware and names each request after its ``url_rule`` endpoint."""

    framework = ""  # for messages: "Flask", "Quart"
    app_attr = ""  # the callable to wrap: "wsgi_app", "asgi_app"

    def __init__(self, app: Any = None, *sinks: object, **options: Any) -> None:
        self._sinks, self._options = sinks, options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        if app.extensions.get("errclass") is not None:
            raise RuntimeError(f"errclass is already set up on this {self.framework} app")
        middleware = self.middleware()
        wrapped = middleware(getattr(app, self.app_attr), *self._sinks, **self._options)
        setattr(app, self.app_attr, wrapped)
        app.before_request(self.name_route)
        app.extensions["errclass"] = self

    @staticmethod
    def middleware() -> Any:
        """The ErrclassMiddleware class for this framework (imported when used)."""
        raise NotImplementedError

    #: The framework's before-request hook that puts the endpoint under ROUTE_KEY
    #: (the function itself: Quart runs a sync hook in a thread, an async one on the loop).
    name_route: Callable[[], Any]
