"""Falcon: name each request's producer after its URI template::

    import falcon.asgi
    from errclass.integrations.asgi import ErrclassMiddleware
    from errclass.integrations.falcon import RouteNames

    app = ErrclassMiddleware(falcon.asgi.App(middleware=[RouteNames()]))

(``falcon.App`` and ``errclass.integrations.wsgi.ErrclassMiddleware`` for
WSGI.) The producer is ``req.uri_template`` (``"/items/{id}"``); requests no
route matched share ``errclass.unmatched``.
"""

from __future__ import annotations

from typing import Any

from ._routes import ROUTE_KEY, UNMATCHED

__all__ = ["RouteNames"]


class RouteNames:
    """Falcon middleware (WSGI and ASGI) that names the request's producer."""

    def process_request(self, req: Any, resp: Any) -> None:
        _carrier(req)[ROUTE_KEY] = UNMATCHED

    def process_resource(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        if resource is not None and req.uri_template:
            _carrier(req)[ROUTE_KEY] = req.uri_template

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self.process_request(req, resp)

    async def process_resource_async(self, req: Any, resp: Any, resource: Any, params: Any) -> None:
        self.process_resource(req, resp, resource, params)


def _carrier(req: Any) -> dict[str, Any]:
    scope = getattr(req, "scope", None)
    return scope if scope is not None else req.env  # type: ignore[no-any-return]
