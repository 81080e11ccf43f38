"""FastAPI with ``app.add_middleware(ErrclassMiddleware)``, for the framework matrix."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from errclass.integrations.asgi import ErrclassMiddleware
from tests.servers.fw_common import ROUTES, abody
from tests.servers.metrics_routes import with_metrics_asgi

api = FastAPI()


def add(route: str) -> None:
    async def view() -> StreamingResponse:
        return StreamingResponse(abody(route))

    view.__name__ = view.__qualname__ = route
    api.get(f"/{route}")(view)


for _route in ROUTES:
    add(_route)

api.add_middleware(ErrclassMiddleware, logger=None)
app = with_metrics_asgi(api)
