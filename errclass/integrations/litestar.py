"""Litestar: the ASGI middleware as a plugin::

    from errclass.integrations.litestar import ErrclassPlugin

    app = Litestar(route_handlers=[...], plugins=[ErrclassPlugin()])

Producers are named for the route handler's function (``module.qualname``).
Litestar runs middleware only for matched routes, so an unmatched path is not
recorded; wrap the application instead (``ErrclassMiddleware(app)``) to count
those too, under ``errclass.unmatched``. Options are those of
``errclass.integrations.asgi.ErrclassMiddleware``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ErrclassPlugin"]


class ErrclassPlugin:
    """A Litestar init plugin that puts ErrclassMiddleware first in the app's middleware."""

    def __init__(self, *sinks: object, **options: Any) -> None:
        from .asgi import ErrclassMiddleware

        ErrclassMiddleware(_noop, *sinks, **options)  # bad options fail here, clearly
        self._sinks, self._options = sinks, options

    def on_app_init(self, app_config: Any) -> Any:
        from .asgi import ErrclassMiddleware

        sinks, options = self._sinks, self._options

        def middleware(app: Any) -> Any:  # Litestar calls it with app=, once per route
            return ErrclassMiddleware(app, *sinks, **options)

        app_config.middleware.insert(0, middleware)
        return app_config


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    return None
