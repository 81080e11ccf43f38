"""Throughput of a streaming ASGI endpoint with errclass and with its peers, same server,
same run.

One server process (uvicorn, or hypercorn) serves the same Starlette or FastAPI
endpoint, a ``StreamingResponse`` of 20 chunks, from one application per path:

* ``/plain`` and ``/control`` uninstrumented (an A/A pair: their ratio is the
  noise floor);
* ``/errclass``: ``app.add_middleware(ErrclassMiddleware)`` (default counter and
  logger);
* ``/otel``: OpenTelemetry's ``OpenTelemetryMiddleware``, given an SDK
  ``TracerProvider`` (batch span processor with a queue that holds a whole
  burst's spans, an exporter that drops them)
  and an SDK ``MeterProvider`` (an in-memory reader), so that it really records
  (handed to the middleware, not set globally: errclass, which looks for a
  global tracer provider for exemplars, runs as in an app without OpenTelemetry;
  the span processor's thread counts in the server's CPU time);
* ``/prometheus``: ``Instrumentator().instrument(app)``
  (prometheus-fastapi-instrumentator's default metrics);
* on hypercorn, ``/errclass-no-settle``: errclass without the few loop turns it
  gives hypercorn before the last message (so that a disconnect already on its
  way is seen), to state what they cost.

A load generator in a second process measures, per round and path, one burst
of requests over fresh keep-alive connections (each warmed by one request, not
timed) by the server process's own CPU clock, read from outside it (Linux's
per-process CPU clock: all its threads, user + system, to the nanosecond; the
load generator's CPU time is not in it, and time the server waits for the
load generator or for other processes on the machine is not either). Only one
path's burst runs at a time; before each the server exports OpenTelemetry's
queued spans and collects garbage (untimed: nothing of one burst is paid in
the next), after each it exports the burst's spans (timed). Rounds come in
ABBA pairs (an order, then the same order reversed, rotated from pair to pair),
so that drift in the machine's speed weighs on every path alike. The load
generator reads each response as raw bytes (checked against the first one it
parsed) and asks the kernel to wake it once per 64 KB rather than per chunk:
every wake-up preempts the server mid-response, and made its CPU time per
request both higher and much noisier. The ratio of a path is, per pair, its
requests per server CPU-second over ``/plain``'s; the table gives the median
over the pairs and a 95% bootstrap interval of that median. Run:
``python bench/bench_asgi.py`` (or ``make bench``); ``ERRCLASS_BENCH_ASGI_PAIRS``
/ ``ERRCLASS_BENCH_ASGI_BURST`` set the pairs of rounds and the requests per
burst.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import _load  # bench/ is on sys.path: this script's directory

CHUNKS = 20
WORKLOADS = (1024, 16384)  # chunk sizes: a 20 KB and a 320 KB stream
PAIRS = int(os.environ.get("ERRCLASS_BENCH_ASGI_PAIRS", "16"))  # ABBA pairs of rounds
BURST = int(os.environ.get("ERRCLASS_BENCH_ASGI_BURST", "200"))  # requests per burst
CONCURRENCY = int(os.environ.get("ERRCLASS_BENCH_ASGI_CONNECTIONS", "4"))
WAKE_BYTES = int(os.environ.get("ERRCLASS_BENCH_ASGI_WAKE_BYTES", "65536"))  # see get_known
WARM_UP = BURST  # requests per path before the rounds (discarded)
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
        self.tracer_provider: Any = None  # the SDK TracerProvider, once made

    def flush(self) -> None:
        """Export the spans queued so far (the span processor's thread would do it
        later, during another endpoint's burst)."""
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()

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

        tracer_provider = recorded.tracer_provider = TracerProvider()
        # a queue that holds a whole burst's spans (one per message and the request's):
        # the default 2,048 drops spans, which would measure less than OTel's real work
        processor = BatchSpanProcessor(recorded.spans, max_queue_size=1 << 17)  # type: ignore[arg-type]
        tracer_provider.add_span_processor(processor)
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
        elif scope["path"] == "/before":  # before a burst: leave nothing of the last one
            recorded.flush()
            gc.collect()
            status, body = 200, "{}"
        elif scope["path"] == "/after":  # after a burst: its spans exported within it
            recorded.flush()
            status, body = 200, "{}"
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
        self.consumed = 0  # bytes of responses read so far
        self.known: tuple[int, bytes, bytes] | None = None  # length, start, end
        self.raw = bytearray()
        self.low = 1  # the socket's SO_RCVLOWAT

    def get_known(self, path: str) -> None:
        """``GET path``, reading the response as raw bytes: no parsing, so that the load
        generator's own cost, which competes with the server for the 2 cores, stays
        small. It must be as long as the last one ``get`` read, with the same start
        (status line) and the same end (the last chunk, or the body's last bytes)."""
        if self.known is None or self.buf:
            raise RuntimeError("get_known() before a whole response, or with bytes left over")
        want, head, tail = self.known
        if len(self.raw) != want:
            self.raw = bytearray(want)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        got, view = 0, memoryview(self.raw)
        while got < want:
            # wake this reader once per WAKE_BYTES (or the rest), not once per chunk: each
            # wake-up preempts the server mid-response and makes its CPU time noisier.
            # (The kernel wakes a reader by SO_RCVLOWAT alone, not by how much it asked
            # for: the last piece must lower it, or the read waits for bytes never sent.)
            low = min(want - got, WAKE_BYTES)
            if low != self.low:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, low)
                self.low = low
            n = self.sock.recv_into(view[got:])
            if not n:
                raise ConnectionError("the server closed the connection")
            got += n
        if not (self.raw.startswith(head) and self.raw.endswith(tail)):
            raise RuntimeError(f"{path}: not the response read before: {bytes(view[:64])!r}")

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
        self.consumed += i + len(end)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self.consumed += n
        return data

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and the decoded body of ``GET path``."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        start = self.consumed
        head = self._line(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
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
        # what get_known() expects next time: this length, start and end
        chunked = headers.get("transfer-encoding") == "chunked"
        self.known = (self.consumed - start, head[:16], b"0\r\n\r\n" if chunked else body[-5:])
        return int(status_line.split()[1]), headers, body


def served(port: int, paths: Sequence[str]) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Each path's response as ``get`` parses it, asked twice on one keep-alive
    connection (the second, without its Date header): what the bench's endpoints are
    checked to share."""
    seen = {}
    for path in paths:
        conn = Connection(port)
        try:
            for _ in range(2):
                status, headers, body = conn.get(path)
                headers.pop("date", None)
                seen[path] = (status, headers, body)
        finally:
            conn.close()
    return seen


class Loader:
    """The load generator: bursts of GETs of one path on fresh keep-alive connections,
    timed by the server's own CPU clock (read from this process: the load
    generator's own CPU time is not in it)."""

    def __init__(self, port: int, pid: int, size: int) -> None:
        self.port, self.size = port, size
        self.cpu = _load.cpu_clock(pid)
        self.control = Connection(port)  # for /before and /after, outside the bursts
        self.sent: dict[str, int] = {}  # requests per path (for the check)

    def _sync(self, path: str) -> None:
        if self.control.get(path)[0] != 200:
            raise RuntimeError(f"{path} failed")

    def _first(self, conn: Connection, path: str) -> None:
        """One fully parsed and checked request: the connection learns the response."""
        status, _, body = conn.get(path)
        if status != 200 or len(body) != self.size:
            raise RuntimeError(f"{path}: {status}, {len(body)} bytes, not {self.size}")

    def burst(self, path: str, n: int) -> list[float]:
        """``[requests, wall seconds, server CPU seconds]`` of *n* GETs of *path*
        on CONCURRENCY connections, each warmed by one request first (not timed)."""
        conns = [Connection(self.port) for _ in range(CONCURRENCY)]
        per_conn, failed = n // CONCURRENCY, []

        def run(conn: Connection) -> None:
            try:
                for _ in range(per_conn):
                    conn.get_known(path)
            except BaseException as e:  # re-raised below: a burst that failed measures nothing
                failed.append(e)

        try:
            for conn in conns:
                self._first(conn, path)
            workers = [threading.Thread(target=run, args=(conn,)) for conn in conns]
            self._sync("/before")
            cpu0, t0 = self.cpu(), time.perf_counter()
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            self._sync("/after")  # the server has finished the burst's requests
            cpu, wall = self.cpu() - cpu0, time.perf_counter() - t0
        finally:
            for conn in conns:
                conn.close()
        if failed:
            raise failed[0]
        self.sent[path] = self.sent.get(path, 0) + CONCURRENCY * (per_conn + 1)
        return [CONCURRENCY * per_conn, wall, cpu]


def load(argv: Sequence[str]) -> None:
    """The load generator's process (``port pid pairs burst size path...``): a warm-up
    burst per path (discarded), *pairs* ABBA pairs of rounds; prints the rounds and
    the requests sent per path."""
    port, pid, pairs, n, size = (int(a) for a in argv[:5])
    paths = argv[5:]
    loader = Loader(port, pid, size)
    for path in paths:
        loader.burst(path, WARM_UP)
    rounds = _load.abba(paths, pairs, lambda path: loader.burst(path, n))
    loader.control.close()
    print(json.dumps({"rounds": rounds, "sent": loader.sent}))


# -- the run ------------------------------------------------------------------------


def start(server: str, framework: str, chunk: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start the bench server in its own process group; return it and its port once
    it listens."""
    return _load.start_server(__file__, server, framework, str(chunk))


def run(server: str, framework: str, chunk: int) -> tuple[list[_load.Round], dict[str, Any]]:
    """One server streaming *chunk*-byte chunks: the rounds measured, and what the
    instrumentations recorded (checked against the requests sent)."""
    paths = HYPERCORN if server == "hypercorn" else PEERS
    proc, port = start(server, framework, chunk)
    try:
        args = (str(port), str(proc.pid), str(PAIRS), str(BURST), str(CHUNKS * chunk))
        out = _load.load(__file__, *args, *paths)
        sent = set(out["sent"].values())
        if len(sent) != 1:
            raise RuntimeError(f"unequal requests per path: {out['sent']}")
        check(recorded(port), paths, sent.pop())
        return out["rounds"], out["sent"]
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
    rounds, _ = run(server, framework, chunk)
    what = f"{server} + {framework.capitalize()}, {CHUNKS} x {chunk // 1024} KB"
    results = {}
    for path in (p for p in NAMES if p in rounds[0]):
        results[path] = _load.table_row(what, NAMES[path], rounds, path, "/plain")
    return results


def main() -> None:
    began = time.monotonic()
    print(
        f"one server process per table, serving a {CHUNKS}-chunk StreamingResponse from one "
        f"application per endpoint; {PAIRS} ABBA pairs of rounds of one {BURST}-request burst "
        f"per endpoint over {CONCURRENCY} keep-alive connections (warm-up discarded), from a "
        "load generator in its own process. The ratio is requests per CPU-second of the "
        "server process (its own CPU clock: all its threads, user + system; not the load "
        "generator's) over the uninstrumented endpoint's, per pair; median of the pairs and a "
        f"95% bootstrap interval of it. Load average at the start: {_load.load_average()}.\n"
    )
    print(
        "| server, stream | endpoint | req/s (wall clock) | server CPU µs/request | "
        "capacity ratio | 95% interval |"
    )
    print("|---|---|---:|---:|---:|---|")
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
        f"{h['/errclass-no-settle'] - h['/errclass']:+.3f} of the uninstrumented capacity.\n"
        f"Load average at the end: {_load.load_average()}; {time.monotonic() - began:.0f} s."
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1:2] == ["--load"]:
        load(sys.argv[2:])
    else:
        main()
