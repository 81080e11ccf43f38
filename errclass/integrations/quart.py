"""Quart: the ASGI middleware as a Quart extension, producers named by endpoint::

    from errclass.integrations.quart import Errclass

    app = Quart(__name__)
    Errclass(app)                 # or: Errclass().init_app(app)

As Flask's: each request under its ``url_rule`` endpoint, unmatched paths
under ``errclass.unmatched``. Options are those of
``errclass.integrations.asgi.ErrclassMiddleware``.
"""

from __future__ import annotations

from typing import Any

from ._routes import ROUTE_KEY, UNMATCHED

__all__ = ["Errclass"]


class Errclass:
    """Quart extension: wraps ``app.asgi_app`` and names each request's producer."""

    def __init__(self, app: Any = None, *sinks: object, **options: Any) -> None:
        self._sinks, self._options = sinks, options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        from .asgi import ErrclassMiddleware

        if app.extensions.get("errclass") is not None:
            raise RuntimeError("errclass is already set up on this Quart app")
        app.asgi_app = ErrclassMiddleware(app.asgi_app, *self._sinks, **self._options)
        app.before_request(_name_route)
        app.extensions["errclass"] = self


async def _name_route() -> None:
    from quart import request

    rule = request.url_rule
    scope: Any = request.scope  # a TypedDict to mypy; errclass's key is an extension
    scope[ROUTE_KEY] = UNMATCHED if rule is None else rule.endpoint
