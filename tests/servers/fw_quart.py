"""Quart with the errclass extension, for the framework matrix."""

from __future__ import annotations

from typing import Any

from quart import Quart

from errclass.integrations.quart import Errclass
from tests.servers.fw_common import ROUTES, abody
from tests.servers.metrics_routes import with_metrics_asgi

quart_app = Quart(__name__)


def add(route: str) -> None:
    async def view() -> Any:
        return abody(route), 200, {"Content-Type": "application/octet-stream"}

    view.__name__ = view.__qualname__ = route
    quart_app.add_url_rule(f"/{route}", view_func=view)


for _route in ROUTES:
    add(_route)

Errclass(quart_app, logger=None)
app = with_metrics_asgi(quart_app)
