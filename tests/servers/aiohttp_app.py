"""An aiohttp app for the matrix, behind errclass's aiohttp middleware.

Run by the tests as ``from tests.servers.aiohttp_app import main; main()`` with
``--port P [--handler-cancellation]``.
``/metrics`` serves the default registry (outside the middleware's producers:
it is recorded under its own name). Each scenario is its own handler, recorded
as ``tests.servers.aiohttp_app.<handler>``; ``matrix_streams_started_total``
counts the streams that began. Scenarios mirror ``tests/servers/asgi_app.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator

import prometheus_client
from aiohttp import web

import errclass
from errclass._sinks._prometheus import default_sink
from errclass.integrations.aiohttp import setup

STARTED = prometheus_client.Counter(
    "matrix_streams_started", "Streams the matrix app began.", ["scenario"]
)
DEADLINE = float(os.environ.get("MATRIX_DEADLINE", "0.5"))


async def chunks(n: int, size: int, delay: float) -> AsyncIterator[bytes]:
    chunk = b"x" * size
    for _ in range(n):
        yield chunk
        if delay:
            await asyncio.sleep(delay)


async def relay(
    request: web.Request, scenario: str, body: AsyncIterator[bytes]
) -> web.StreamResponse:
    STARTED.labels(scenario).inc()
    resp = web.StreamResponse()
    await resp.prepare(request)
    async for chunk in body:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def completes(request: web.Request) -> web.StreamResponse:
    return await relay(request, "completes", chunks(5, 100, 0.005))


async def fin(request: web.Request) -> web.StreamResponse:
    return await relay(request, "fin", chunks(1000, 1000, 0.02))


async def rst(request: web.Request) -> web.StreamResponse:
    return await relay(request, "rst", chunks(1000, 1000, 0.02))


async def fast(request: web.Request) -> web.StreamResponse:
    """A producer that never awaits (only the writes do)."""
    return await relay(request, "fast", chunks(4096, 65536, 0))


async def swallow(request: web.Request) -> web.StreamResponse:
    """A handler that catches the failed write and returns as if all went well."""
    STARTED.labels("swallow").inc()
    resp = web.StreamResponse()
    await resp.prepare(request)
    try:
        async for chunk in chunks(1000, 1000, 0.02):
            await resp.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # (swallowing a cancellation is a bug; aiohttp users write it anyway)
    return resp


async def stalled(request: web.Request) -> web.StreamResponse:
    """The writes happen inside errclass.deadline(): a client that stops reading
    blocks them on flow control until the deadline."""
    STARTED.labels("stalled").inc()
    resp = web.StreamResponse()
    await resp.prepare(request)
    async with errclass.deadline(DEADLINE):
        chunk = b"x" * 65536
        while True:
            await resp.write(chunk)


async def devfull(request: web.Request) -> web.StreamResponse:
    async def tee() -> AsyncIterator[bytes]:
        with open("/dev/full", "wb", buffering=0) as sink:
            for i in range(100):
                chunk = b"%d\n" % i
                if i >= 2:
                    sink.write(chunk)  # ENOSPC: our own fault, mid-stream
                yield chunk
                await asyncio.sleep(0.005)

    return await relay(request, "devfull", tee())


async def upstream(request: web.Request) -> web.StreamResponse:
    import httpx

    port = int(request.query.get("port", "0"))

    async def fetch() -> AsyncIterator[bytes]:
        async with (
            httpx.AsyncClient(timeout=5) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/") as resp,
        ):
            async for chunk in resp.aiter_raw():
                yield chunk

    return await relay(request, "upstream", fetch())


async def shutdown(request: web.Request) -> web.StreamResponse:
    return await relay(request, "shutdown", chunks(100000, 10, 0.05))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=prometheus_client.generate_latest(), content_type="text/plain", charset="utf-8"
    )


def _event_log(event: errclass.Event) -> None:
    """Outcomes as JSON lines, for the shutdown test (metrics die with the server)."""
    with open(os.environ["MATRIX_EVENTS"], "a") as f:
        f.write(json.dumps({"producer": event.producer, "reason": event.reason.value}) + "\n")


def make_app() -> web.Application:
    sinks = (default_sink(), _event_log) if os.environ.get("MATRIX_EVENTS") else ()
    app = web.Application()
    setup(app, *sinks)
    for handler in (
        completes,
        fin,
        rst,
        fast,
        swallow,
        stalled,
        devfull,
        upstream,
        shutdown,
        metrics,
    ):
        app.router.add_get(f"/{handler.__name__}", handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--handler-cancellation", action="store_true")
    parser.add_argument("--grace", type=float, default=1.0)
    args = parser.parse_args()
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=args.port,
        handler_cancellation=args.handler_cancellation,
        shutdown_timeout=args.grace,
        print=None,
    )
