"""A WSGI app for the matrix: streaming producers behind ErrclassMiddleware.

Run by gunicorn (``tests.servers.wsgi_app:app``) or by ``python -m
tests.servers.wsgi_app --server werkzeug|wsgiref --port P``. ``/metrics`` serves
the exposition (multiprocess-aware), ``/pid`` the worker's PID; every other
path is a producer named ``wsgi_matrix``:

* ``/slow?n=&delay=&size=``: n chunks, ``delay`` seconds apart;
* ``/fast?n=&size=``: n chunks, never sleeping;
* ``/devfull?n=``: tees each chunk to /dev/full (ENOSPC on the third);
* ``/upstream?port=``: relays a loopback upstream with httpx.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from errclass.integrations.wsgi import ErrclassMiddleware

PRODUCER = "wsgi_matrix"


def _params(environ: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def slow(n: int, delay: float, size: int) -> Iterator[bytes]:
    for _ in range(n):
        yield b"x" * size
        time.sleep(delay)


def fast(n: int, size: int) -> Iterator[bytes]:
    chunk = b"x" * size
    for _ in range(n):
        yield chunk


def devfull(n: int) -> Iterator[bytes]:
    with open("/dev/full", "wb", buffering=0) as tee:
        for i in range(n):
            chunk = b"%d\n" % i
            if i >= 2:
                tee.write(chunk)  # ENOSPC: a fault of ours, mid-stream
            yield chunk


def upstream(port: int) -> Iterator[bytes]:
    import httpx

    with httpx.stream("GET", f"http://127.0.0.1:{port}/", timeout=5) as resp:
        yield from resp.iter_raw()


def producers(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    p = _params(environ)
    path = environ.get("PATH_INFO", "")
    if path == "/slow":
        body = slow(int(p.get("n", "5")), float(p.get("delay", "0.01")), int(p.get("size", "16")))
    elif path == "/fast":
        body = fast(int(p.get("n", "1000")), int(p.get("size", "65536")))
    elif path == "/devfull":
        body = devfull(int(p.get("n", "10")))
    elif path == "/upstream":
        body = upstream(int(p["port"]))
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such producer\n"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return body


tracked = ErrclassMiddleware(producers, name=PRODUCER, logger=None)


def metrics() -> bytes:
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/metrics":
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [metrics()]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    return tracked(environ, start_response)


def serve(server: str, port: int, timeout: float) -> None:
    """werkzeug or wsgiref with a socket timeout: the server-side deadline on a stalled write."""
    if server == "werkzeug":
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Handler(WSGIRequestHandler):
            pass

        Handler.timeout = timeout
        make_server("127.0.0.1", port, app, threaded=True, request_handler=Handler).serve_forever()
    elif server == "wsgiref":
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler as RefHandler
        from wsgiref.simple_server import WSGIServer
        from wsgiref.simple_server import make_server as ref_server

        class ThreadingServer(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class QuietHandler(RefHandler):
            timeout = None

            def log_message(self, *args: Any) -> None:
                pass

        QuietHandler.timeout = timeout
        ref_server(
            "127.0.0.1", port, app, server_class=ThreadingServer, handler_class=QuietHandler
        ).serve_forever()
    else:
        raise SystemExit(f"unknown server {server!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, choices=["werkzeug", "wsgiref"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    serve(args.server, args.port, args.timeout)
