"""Starlette behind ErrclassMiddleware, for the framework matrix (see fw_common).

``inner_app`` is the same app with ``record=False``, whose producers are
tracked by errclass themselves (items 3 and 4 of issue 16)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import errclass
from errclass.integrations.asgi import ErrclassMiddleware
from tests.servers.fw_common import ROUTES, STARTED, abody, tracked_body
from tests.servers.metrics_routes import with_metrics_asgi


def endpoint(route: str) -> Any:
    async def view(request: Request) -> StreamingResponse:
        return StreamingResponse(abody(route))

    view.__name__ = view.__qualname__ = route
    return view


async def tracked(request: Request) -> StreamingResponse:
    return StreamingResponse(tracked_body())


@errclass.track(name="deadline_body", logger=None)
async def deadline_body() -> Any:
    STARTED.labels("deadline_send").inc()
    while True:
        yield b"x" * 65536


class DeadlineSend:
    """Item 4: the request's deadline encloses the sends of a tracked producer; the
    client stops reading, so a send blocks until the deadline cancels it."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunks = deadline_body()
        async with errclass.deadline(0.3):
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})


routes = [Route(f"/{r}", endpoint(r)) for r in ROUTES]
routes += [Route("/tracked", tracked), Route("/deadline_send", DeadlineSend())]
app = with_metrics_asgi(ErrclassMiddleware(Starlette(routes=routes), logger=None))
inner_app = with_metrics_asgi(ErrclassMiddleware(Starlette(routes=routes), record=False))
