"""Throughput of a streaming ASGI endpoint with errclass and with its peers, same server,
same run.

One server process (uvicorn, or hypercorn) serves the same Starlette or FastAPI
endpoint, a ``StreamingResponse`` of 20 chunks, from one application per path:

* ``/plain`` and ``/control`` uninstrumented (an A/A pair: their ratio is the
  noise floor);
* ``/errclass``: ``app.add_middleware(ErrclassMiddleware)`` (default counter and
  logger);
* ``/otel``: OpenTelemetry's ``OpenTelemetryMiddleware``, given an SDK
  ``TracerProvider`` (batch span processor, an exporter that drops the spans)
  and an SDK ``MeterProvider`` (an in-memory reader), so that it really records
  (handed to the middleware, not set globally: errclass, which looks for a
  global tracer provider for exemplars, runs as in an app without OpenTelemetry;
  the span processor's thread counts in the server's CPU time);
* ``/prometheus``: ``Instrumentator().instrument(app)``
  (prometheus-fastapi-instrumentator's default metrics);
* on hypercorn, ``/errclass-no-settle``: errclass without the few loop turns it
  gives hypercorn before the last message (so that a disconnect already on its
  way is seen), to state what they cost.

A load generator in a second process reads every body whole over keep-alive
connections, in bounded bursts whose order rotates every round, so that other
load on the machine hits the paths alike. Per round and path it takes requests
per second of wall-clock time and requests per CPU-second of the server process
(``time.process_time()`` read in the server before and after the burst: one
path's burst runs at a time). Ratios are medians of the per-round ratios against
``/plain``. Run: ``python bench/bench_asgi.py`` (or ``make bench``);
``ERRCLASS_BENCH_ASGI_ROUNDS`` / ``ERRCLASS_BENCH_ASGI_BURST`` set the rounds
and the requests per burst.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import _load  # bench/ is on sys.path: this script's directory

CHUNKS = 20
WORKLOADS = (1024, 16384)  # chunk sizes: a 20 KB and a 320 KB stream
ROUNDS = int(os.environ.get("ERRCLASS_BENCH_ASGI_ROUNDS", "30"))
BURST = int(os.environ.get("ERRCLASS_BENCH_ASGI_BURST", "100"))
CONCURRENCY = 4
WARM_UP = BURST // 4 // CONCURRENCY * CONCURRENCY  # requests per path before the rounds
TARGET = 0.98
PEERS = ("/plain", "/control", "/errclass", "/otel", "/prometheus")
HYPERCORN = ("/plain", "/control", "/errclass", "/errclass-no-settle")
NAMES = {
    "/plain": "uninstrumented",
    "/control": "uninstrumented again (A/A noise)",
    "/errclass": "errclass `ErrclassMiddleware`",
    "/otel": "OpenTelemetry `OpenTelemetryMiddleware` (SDK providers)",
    "/prometheus": "prometheus-fastapi-instrumentator",
    "/errclass-no-settle": "errclass without the loop turns before the last message",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# -- the server (its own process) -------------------------------------------------


async def _body(chunk: bytes) -> AsyncIterator[bytes]:
    for _ in range(CHUNKS):
        yield chunk


def _starlette(path: str, chunk: bytes) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(_body(chunk), media_type="application/octet-stream")

    return Starlette(routes=[Route(path, stream)])


def _fastapi(path: str, chunk: bytes) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get(path)
    async def stream() -> StreamingResponse:
        return StreamingResponse(_body(chunk), media_type="application/octet-stream")

    return app


class _Spans:
    """An OpenTelemetry span exporter that drops the spans (it counts them)."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Recorded:
    """Where the OpenTelemetry middleware's spans and metrics go."""

    def __init__(self) -> None:
        self.spans = _Spans()
        self.metrics: Any = None  # the SDK MeterProvider's in-memory reader, once made

    def otel_requests(self) -> int:
        """Requests in OpenTelemetry's server-duration histogram."""
        data = self.metrics.get_metrics_data() if self.metrics is not None else None
        count = 0
        for resource in getattr(data, "resource_metrics", ()):
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name.startswith("http.server") and "duration" in metric.name:
                        count += sum(point.count for point in metric.data.data_points)
        return count


def _instrument(app: Any, path: str, recorded: _Recorded) -> Any:
    """Add *path*'s instrumentation to the framework application *app*."""
    if path == "/errclass":
        from errclass.integrations.asgi import ErrclassMiddleware

        app.add_middleware(ErrclassMiddleware)
    elif path == "/errclass-no-settle":
        app.add_middleware(_no_settle())
    elif path == "/otel":
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(recorded.spans))  # type: ignore[arg-type]
        recorded.metrics = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[recorded.metrics])
        app.add_middleware(
            OpenTelemetryMiddleware, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    elif path == "/prometheus":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app)
    return app


def _no_settle() -> type:
    from errclass.integrations.asgi import ErrclassMiddleware

    class NoSettle(ErrclassMiddleware):
        _settle_steps = 0

    return NoSettle


def _stats(recorded: _Recorded) -> dict[str, Any]:
    """What each instrumentation recorded so far (for the check that it really records)."""
    from prometheus_client import REGISTRY

    errclass: dict[str, float] = {}
    prometheus = 0.0
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name == "errclass_outcomes_total":
                errclass[s.labels["reason"]] = errclass.get(s.labels["reason"], 0) + s.value
            elif s.name == "http_requests_total":
                prometheus += s.value
    return {
        "errclass": errclass,
        "prometheus": prometheus,
        "otel": recorded.otel_requests(),
        "otel_spans": recorded.spans.exported,
    }


def build(framework: str, chunk: int, paths: Sequence[str]) -> ASGIApp:
    """One application per path behind a dispatcher on the path, plus ``/cpu``:
    the server's CPU seconds and what the instrumentations recorded."""
    make = {"starlette": _starlette, "fastapi": _fastapi}[framework]
    recorded = _Recorded()
    apps = {p: _instrument(make(p, b"x" * chunk), p, recorded) for p in paths}

    async def dispatch(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # no application here needs startup or shutdown
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        app = apps.get(scope["path"])
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["path"] == "/cpu":
            status, body = 200, json.dumps({"cpu": time.process_time(), **_stats(recorded)})
        else:
            status, body = 404, "{}"
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})

    return dispatch


def serve(server: str, framework: str, chunk: int, port: int) -> None:
    """Serve the bench's application on 127.0.0.1:*port* until SIGTERM."""
    paths = HYPERCORN if server == "hypercorn" else PEERS
    app = build(framework, chunk, paths)
    if server == "uvicorn":
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        uvicorn.Server(config).run()  # SIGTERM: uvicorn's own graceful shutdown
        return
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    async def run() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.graceful_timeout = 1.0
        config.loglevel = "WARNING"
        await hypercorn_serve(app, config, shutdown_trigger=stopping.wait)  # type: ignore[arg-type]

    asyncio.run(run())


# -- the load generator (its own process) -------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that reads whole responses (chunked or sized)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        got = self.sock.recv(262144)
        if not got:
            raise ConnectionError("the server closed the connection")
        self.buf += got

    def _line(self, end: bytes = b"\r\n") -> bytes:
        while (i := self.buf.find(end)) < 0:
            self._fill()
        line = bytes(self.buf[:i])
        del self.buf[: i + len(end)]
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and the decoded body of ``GET path``."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status_line, *lines = self._line(b"\r\n\r\n").decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._exactly(size))
                self._line()
            self._line()  # no trailers: the empty line after the last chunk
            body = b"".join(parts)
        else:
            body = self._exactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body


def _cpu(port: int) -> float:
    conn = Connection(port)
    try:
        return float(json.loads(conn.get("/cpu")[2])["cpu"])
    finally:
        conn.close()


def measure(port: int, path: str, n: int, size: int) -> list[float]:
    """``[requests, wall seconds, server CPU seconds]`` of one burst of *n* GETs."""
    conns: list[Connection] = []

    def connect() -> Callable[[], object]:
        conn = Connection(port)
        conns.append(conn)

        def one() -> None:
            status, _, body = conn.get(path)
            if status != 200 or len(body) != size:
                raise RuntimeError(f"{path}: {status}, {len(body)} bytes, not {size}")

        return one

    try:
        return _load.burst(connect, lambda: _cpu(port), n, CONCURRENCY)
    finally:
        for conn in conns:
            conn.close()


# -- the run ------------------------------------------------------------------------


def start(server: str, framework: str, chunk: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start the bench server in its own process group; return it and its port once
    it listens."""
    port = _load.free_port()
    argv = [sys.executable, __file__, "--serve", server, framework, str(chunk), str(port)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        _load.wait_listening(port, proc)
    except BaseException:
        _load.stop(proc)
        raise
    return proc, port


def run(server: str, framework: str, chunk: int) -> tuple[list[_load.Round], dict[str, Any]]:
    """One server streaming *chunk*-byte chunks: the rounds measured, and what the
    instrumentations recorded."""
    paths = HYPERCORN if server == "hypercorn" else PEERS
    proc, port = start(server, framework, chunk)
    try:
        size = str(CHUNKS * chunk)
        _load.load(__file__, str(port), "1", str(WARM_UP), size, *paths)
        rounds = _load.load(__file__, str(port), str(ROUNDS), str(BURST), size, *paths)
        return rounds, recorded(port)
    finally:
        _load.stop(proc)


def recorded(port: int) -> dict[str, Any]:
    """What each instrumentation of the server on *port* recorded so far."""
    conn = Connection(port)
    try:
        stats: dict[str, Any] = json.loads(conn.get("/cpu")[2])
    finally:
        conn.close()
    return stats


def check(stats: dict[str, Any], paths: Sequence[str], per_path: int) -> None:
    """Each instrumentation recorded every request it saw (none measured a no-op)."""
    wanted = {
        "errclass ok": len([p for p in paths if p.startswith("/errclass")]) * per_path,
        "errclass": len([p for p in paths if p.startswith("/errclass")]) * per_path,
        "prometheus": per_path if "/prometheus" in paths else 0,
        "otel": per_path if "/otel" in paths else 0,
    }
    got = {
        "errclass ok": stats["errclass"].get("ok", 0),
        "errclass": sum(stats["errclass"].values()),
        "prometheus": stats["prometheus"],
        "otel": stats["otel"],
    }
    if got != wanted:
        raise RuntimeError(f"the instrumentations recorded {got}, not {wanted}")


def _table(server: str, framework: str, chunk: int) -> dict[str, float]:
    rounds, stats = run(server, framework, chunk)
    paths = list(rounds[0])
    per_path = int(sum(r[paths[0]][0] for r in rounds)) + WARM_UP
    check(stats, paths, per_path)
    what = f"{server} + {framework.capitalize()}, {CHUNKS} x {chunk // 1024} KB"
    results = {}
    for path in (p for p in NAMES if p in paths):
        rps, rps_ratio, cap, cap_ratio = _load.ratios(rounds, path, "/plain")
        results[path] = cap_ratio
        print(
            f"| {what} | {NAMES[path]} | {rps:,.0f} | {rps_ratio:.3f} | {cap:,.0f} | "
            f"{cap_ratio:.3f} |",
            flush=True,
        )
    return results


def main() -> None:
    print(
        f"one server process; a {CHUNKS}-chunk StreamingResponse per request; {ROUNDS} rounds "
        f"of one {BURST}-request burst per endpoint (order rotated), {CONCURRENCY} keep-alive "
        "connections, load generator in its own process; ratios are medians of per-round "
        "ratios to the uninstrumented endpoint\n"
    )
    print("| server, stream | endpoint | req/s | ratio | req per server CPU-s | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    verdicts = []
    for framework in ("starlette", "fastapi"):
        for chunk in WORKLOADS:
            r = _table("uvicorn", framework, chunk)
            ahead = r["/errclass"] > max(r["/otel"], r["/prometheus"])
            verdicts.append(
                f"{framework} {chunk // 1024} KB: {r['/errclass']:.3f} (A/A {r['/control']:.3f}; "
                f"OTel {r['/otel']:.3f}, instrumentator {r['/prometheus']:.3f}; "
                f"{'ahead' if ahead else 'NOT ahead'})"
            )
    h = _table("hypercorn", "starlette", WORKLOADS[0])
    print(
        f"\nerrclass capacity ratio on uvicorn (target {TARGET}, and ahead of both peers): "
        + "; ".join(verdicts)
        + f".\nhypercorn: errclass {h['/errclass']:.3f}, without the loop turns before the last "
        f"message {h['/errclass-no-settle']:.3f} (A/A {h['/control']:.3f}): the turns cost "
        f"{h['/errclass-no-settle'] - h['/errclass']:+.3f} of the uninstrumented capacity."
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1:2] == ["--load"]:
        port, rounds, n, size = (int(a) for a in sys.argv[2:6])
        out = _load.schedule(sys.argv[6:], rounds, lambda path: measure(port, path, n, size))
        print(json.dumps(out))
    else:
        main()
