"""Falcon (ASGI) behind ErrclassMiddleware, for the framework matrix."""

from __future__ import annotations

from typing import Any

import falcon.asgi

from errclass.integrations.asgi import ErrclassMiddleware
from errclass.integrations.falcon import RouteNames
from tests.servers.fw_common import ROUTES, abody
from tests.servers.metrics_routes import with_metrics_asgi


class Streams:
    """One resource per route: the URI template names the producer."""

    def __init__(self, route: str) -> None:
        self.route = route

    async def on_get(self, req: Any, resp: Any) -> None:
        resp.content_type = "application/octet-stream"
        resp.stream = abody(self.route)


falcon_app = falcon.asgi.App(middleware=[RouteNames()])
for _route in ROUTES:
    falcon_app.add_route(f"/{_route}", Streams(_route))

app = with_metrics_asgi(ErrclassMiddleware(falcon_app, logger=None))
