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
from collections.abc import Mapping
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
