"""A gRPC server for the matrix (sync or grpc.aio), with errclass interceptors.

``python -m tests.servers.grpc_server --port P --metrics-port M [--aio]``.
Generic handlers with bytes (de)serializers: no protoc needed. Requests are
JSON: ``{"mode": ..., "n": ..., "delay": ..., "size": ..., "port": ...}``.

* ``/matrix.Matrix/Items`` (unary-stream): modes ``slow``, ``fast``,
  ``devfull`` (tees to /dev/full), ``upstream`` (relays a loopback HTTP
  upstream with httpx), ``abort`` (``context.abort(code)`` after one item);
* ``/matrix.Matrix/Unary`` (unary-unary): ``slow`` (sleeps ``delay``),
  ``abort``.

Producers are named for the method; metrics on ``--metrics-port``, with
``matrix_calls_started_total{method}``: handlers entered (a test waits on it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
from prometheus_client import Counter, start_http_server

from errclass.integrations.grpc import AioServerInterceptor, ServerInterceptor

SERVICE = "matrix.Matrix"
STARTED = Counter("matrix_calls_started", "Handlers the matrix server entered.", ["method"])


def _identity(b: bytes) -> bytes:
    return b


def _code(req: dict[str, Any]) -> grpc.StatusCode:
    return grpc.StatusCode[req.get("code", "NOT_FOUND")]


# -- sync handlers ---------------------------------------------------------------


def items(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    req = json.loads(request)
    mode, n, size = req.get("mode", "slow"), int(req.get("n", 5)), int(req.get("size", 16))
    if mode == "upstream":
        import httpx

        with httpx.stream("GET", f"http://127.0.0.1:{req['port']}/", timeout=5) as resp:
            yield from resp.iter_raw()
        return
    tee = open("/dev/full", "wb", buffering=0) if mode == "devfull" else None  # noqa: SIM115
    try:
        for i in range(n):
            if tee is not None and i >= 2:
                tee.write(b"x")
            if mode == "abort" and i == 1:
                context.abort(_code(req), "deliberate")
            yield b"x" * size
            if mode != "fast":
                time.sleep(float(req.get("delay", 0.01)))
    finally:
        if tee is not None:
            tee.close()


def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    STARTED.labels("Unary").inc()
    req = json.loads(request)
    if req.get("mode") == "abort":
        context.abort(_code(req), "deliberate")
    time.sleep(float(req.get("delay", 0)))
    return b"done"


# -- grpc.aio handlers -----------------------------------------------------------


async def aio_items(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    req = json.loads(request)
    mode, n, size = req.get("mode", "slow"), int(req.get("n", 5)), int(req.get("size", 16))
    if mode == "upstream":
        import httpx

        url = f"http://127.0.0.1:{req['port']}/"
        async with httpx.AsyncClient(timeout=5) as client, client.stream("GET", url) as resp:
            async for chunk in resp.aiter_raw():
                yield chunk
        return
    tee = open("/dev/full", "wb", buffering=0) if mode == "devfull" else None  # noqa: SIM115
    try:
        for i in range(n):
            if tee is not None and i >= 2:
                tee.write(b"x")
            if mode == "abort" and i == 1:
                await context.abort(_code(req), "deliberate")
            yield b"x" * size  # a "fast" producer never awaits anything of its own
            if mode != "fast":
                await asyncio.sleep(float(req.get("delay", 0.01)))
    finally:
        if tee is not None:
            tee.close()


async def aio_unary(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    STARTED.labels("Unary").inc()
    req = json.loads(request)
    if req.get("mode") == "abort":
        await context.abort(_code(req), "deliberate")
    await asyncio.sleep(float(req.get("delay", 0)))
    return b"done"


def _handlers(aio: bool) -> grpc.GenericRpcHandler:
    stream_fn, unary_fn = (aio_items, aio_unary) if aio else (items, unary)
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Items": grpc.unary_stream_rpc_method_handler(stream_fn, _identity, _identity),
            "Unary": grpc.unary_unary_rpc_method_handler(unary_fn, _identity, _identity),
        },
    )


def serve_sync(port: int) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16), interceptors=[ServerInterceptor(logger=None)]
    )
    server.add_generic_rpc_handlers((_handlers(aio=False),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


async def serve_aio(port: int) -> None:
    server = grpc.aio.server(interceptors=[AioServerInterceptor(logger=None)])
    server.add_generic_rpc_handlers((_handlers(aio=True),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--aio", action="store_true")
    args = parser.parse_args()
    start_http_server(args.metrics_port, addr="127.0.0.1")
    if args.aio:
        asyncio.run(serve_aio(args.port))
    else:
        serve_sync(args.port)
