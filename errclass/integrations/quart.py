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

from ._routes import ROUTE_KEY, UNMATCHED, AppExtension

__all__ = ["Errclass"]


async def _name_route() -> None:
    from quart import request

    rule = request.url_rule
    scope: Any = request.scope  # a TypedDict to mypy; errclass's key is an extension
    scope[ROUTE_KEY] = UNMATCHED if rule is None else rule.endpoint


class Errclass(AppExtension):
    """Quart extension: wraps ``app.asgi_app`` and names each request's producer."""

    framework, app_attr = "Quart", "asgi_app"

    @staticmethod
    def middleware() -> Any:
        from .asgi import ErrclassMiddleware

        return ErrclassMiddleware

    name_route = staticmethod(_name_route)
