"""A Starlette app for the ASGI matrix, behind ErrclassMiddleware.

Served by uvicorn or hypercorn as ``tests.servers.asgi_app:app``. ``/metrics``
(outside the middleware) serves the default registry. Each scenario is its own
endpoint, so the middleware records it under its own producer name
(``tests.servers.asgi_app.<endpoint>``); ``matrix_streams_started_total{scenario}``
counts the streams that began. Query parameters: ``n`` chunks of ``size`` bytes,
``delay`` seconds apart; ``port`` of the upstream.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import prometheus_client
import sniffio
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

import errclass
from errclass import stream as adopted_stream
from errclass._sinks._prometheus import default_sink
from errclass.integrations.asgi import ErrclassMiddleware
from tests.servers.metrics_routes import with_metrics_asgi

STARTED = prometheus_client.Counter(
    "matrix_streams_started", "Streams the matrix app began.", ["scenario"]
)
DEADLINE = float(os.environ.get("MATRIX_DEADLINE", "0.5"))


def _int(request: Request, key: str, default: int) -> int:
    return int(request.query_params.get(key, default))


async def chunks(scenario: str, n: int, size: int, delay: float) -> AsyncIterator[bytes]:
    STARTED.labels(scenario).inc()
    chunk = b"x" * size
    for _ in range(n):
        yield chunk
        if delay:
            await anyio.sleep(delay)


async def completes(request: Request) -> StreamingResponse:
    return StreamingResponse(chunks("completes", 5, 100, 0.005))


async def fin(request: Request) -> StreamingResponse:
    return StreamingResponse(chunks("fin", 1000, 1000, 0.02))


async def rst(request: Request) -> StreamingResponse:
    return StreamingResponse(chunks("rst", 1000, 1000, 0.02))


async def load(request: Request) -> StreamingResponse:
    n, delay = _int(request, "n", 40), float(request.query_params.get("delay", 0.01))
    return StreamingResponse(chunks("load", n, 100, delay))


async def fast(request: Request) -> StreamingResponse:
    """A producer that never awaits: sends are no-ops once the client left."""
    return StreamingResponse(chunks("fast", 4096, 65536, 0))


async def devfull(request: Request) -> StreamingResponse:
    async def tee() -> AsyncIterator[bytes]:
        STARTED.labels("devfull").inc()
        with open("/dev/full", "wb", buffering=0) as sink:
            for i in range(100):
                chunk = b"%d\n" % i
                if i >= 2:
                    sink.write(chunk)  # ENOSPC: our own fault, mid-stream
                yield chunk
                await anyio.sleep(0.005)

    return StreamingResponse(tee())


async def upstream(request: Request) -> StreamingResponse:
    import httpx

    port = _int(request, "port", 0)

    async def relay() -> AsyncIterator[bytes]:
        STARTED.labels("upstream").inc()
        async with (
            httpx.AsyncClient(timeout=5) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/") as resp,
        ):
            async for chunk in resp.aiter_raw():
                yield chunk

    return StreamingResponse(relay())


class Stalled:
    """Raw ASGI endpoint: its sends happen inside ``errclass.deadline()``, so a
    client that stops reading (send blocks on flow control) hits the deadline.
    In a StreamingResponse the send happens outside your generator. (On trio,
    ``anyio.fail_after``: errclass.deadline is asyncio's timeout.)"""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        STARTED.labels("stalled").inc()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        on_asyncio = sniffio.current_async_library() == "asyncio"
        async with errclass.deadline(DEADLINE) if on_asyncio else _fail_after(DEADLINE):
            chunk = b"x" * 65536
            while True:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})


@asynccontextmanager
async def _fail_after(seconds: float) -> AsyncIterator[None]:
    with anyio.fail_after(seconds):
        yield


async def events(scenario: str, n: int) -> AsyncIterator[dict[str, str]]:
    STARTED.labels(scenario).inc()
    for i in range(n):
        yield {"data": str(i)}
        await anyio.sleep(0.02)


async def sse_completes(request: Request) -> EventSourceResponse:
    return EventSourceResponse(events("sse_completes", 5))


async def sse_leave(request: Request) -> EventSourceResponse:
    return EventSourceResponse(events("sse_leave", 1000))


async def adopted(request: Request) -> StreamingResponse:
    """A body under errclass.stream(), which the middleware closes at request end."""
    return StreamingResponse(
        adopted_stream(chunks("adopted", 1000, 65536, 0), name="matrix_adopted")
    )


async def shutdown(request: Request) -> StreamingResponse:
    return StreamingResponse(chunks("shutdown", 100000, 10, 0.05))


starlette_app = Starlette(
    routes=[
        Route("/completes", completes),
        Route("/fin", fin),
        Route("/rst", rst),
        Route("/load", load),
        Route("/fast", fast),
        Route("/devfull", devfull),
        Route("/upstream", upstream),
        Route("/stalled", Stalled()),
        Route("/sse_completes", sse_completes),
        Route("/sse_leave", sse_leave),
        Route("/adopted", adopted),
        Route("/shutdown", shutdown),
    ]
)


def _event_log(event: errclass.Event) -> None:
    """Outcomes as JSON lines, for the shutdown test (metrics die with the server)."""
    path = os.environ.get("MATRIX_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"producer": event.producer, "reason": event.reason.value}) + "\n")


# The default counter errclass_outcomes_total{producer, reason}, plus a JSON-lines
# log when MATRIX_EVENTS names a file.
_sinks = (default_sink(), _event_log) if os.environ.get("MATRIX_EVENTS") else ()
app = with_metrics_asgi(ErrclassMiddleware(starlette_app, *_sinks))
