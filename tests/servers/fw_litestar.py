"""Litestar with the errclass plugin, for the framework matrix."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get
from litestar.response import Stream

from errclass.integrations.litestar import ErrclassPlugin
from tests.servers.fw_common import ROUTES, abody
from tests.servers.metrics_routes import with_metrics_asgi


def handler(route: str) -> Any:
    async def stream() -> Stream:
        return Stream(abody(route), media_type="application/octet-stream")

    stream.__name__ = stream.__qualname__ = route
    return get(f"/{route}", name=route)(stream)


litestar_app = Litestar(
    route_handlers=[handler(r) for r in ROUTES],
    logging_config=None,
    plugins=[ErrclassPlugin(logger=None)],
)
app = with_metrics_asgi(litestar_app)
