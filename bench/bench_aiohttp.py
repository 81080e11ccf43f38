"""Throughput of a streaming aiohttp endpoint with errclass's middleware, against the
same endpoint uninstrumented, same server, same run.

One aiohttp server process serves the same handler (a ``StreamResponse`` of 20
chunks, written one ``await resp.write()`` each) from four sub-applications:
``/plain/s`` and ``/control/s`` uninstrumented (an A/A pair: their ratio is the
noise floor), ``/pass/s`` behind a middleware that only awaits the handler (what
any middleware costs in aiohttp) and ``/errclass/s`` with
``errclass_aiohttp.setup(sub)`` (default counter and logger). The measurement is bench_asgi's: a load generator in its own
process, bursts over fresh keep-alive connections timed by the server process's
own CPU clock, ABBA pairs of rounds, the median of the per-pair ratios of
requests per server CPU-second over ``/plain/s``'s, and a 95% bootstrap
interval. Run: ``python bench/bench_aiohttp.py`` (or ``make bench``); the
``ERRCLASS_BENCH_ASGI_*`` variables of bench_asgi apply.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import subprocess
import sys
import time
from typing import Any

import _load  # bench/ is on sys.path: this script's directory
import bench_asgi

PATHS = ("/plain/s", "/control/s", "/pass/s", "/errclass/s")
NAMES = {
    "/plain/s": "uninstrumented",
    "/control/s": "uninstrumented again (A/A noise)",
    "/pass/s": "a pass-through middleware (what any middleware costs)",
    "/errclass/s": "errclass `errclass_aiohttp.setup()`",
}


def build(chunk: int) -> Any:
    """The root application: one sub-application per path, and ``/cpu``, ``/before``
    and ``/after`` as bench_asgi's load generator asks for them."""
    from aiohttp import web
    from prometheus_client import REGISTRY

    from errclass.integrations import aiohttp as errclass_aiohttp

    data = b"x" * chunk

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        await resp.prepare(request)
        for _ in range(bench_asgi.CHUNKS):
            await resp.write(data)
        await resp.write_eof()
        return resp

    @web.middleware
    async def passing(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request)  # type: ignore[no-any-return]

    async def cpu(request: web.Request) -> web.Response:
        ok = sum(
            s.value
            for metric in REGISTRY.collect()
            for s in metric.samples
            if s.name == "errclass_outcomes_total" and s.labels["reason"] == "ok"
        )
        return web.json_response({"cpu": time.process_time(), "errclass_ok": ok})

    async def before(request: web.Request) -> web.Response:
        gc.collect()  # leave nothing of the last burst
        return web.json_response({})

    async def after(request: web.Request) -> web.Response:
        return web.json_response({})

    root = web.Application()
    root.router.add_get("/cpu", cpu)
    root.router.add_get("/before", before)
    root.router.add_get("/after", after)
    for path in PATHS:
        sub = web.Application()
        sub.router.add_get("/s", stream)
        if path.startswith("/errclass"):
            errclass_aiohttp.setup(sub)
        elif path.startswith("/pass"):
            sub.middlewares.append(passing)
        root.add_subapp(path.removesuffix("/s"), sub)
    return root


def serve(chunk: int, port: int) -> None:
    """Serve the bench's application on 127.0.0.1:*port* until SIGTERM."""
    from aiohttp import web

    async def run() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        runner = web.AppRunner(build(chunk), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stopping.wait()
        await runner.cleanup()

    asyncio.run(run())


def start(chunk: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start the bench server in its own process group; return it and its port once
    it listens."""
    return _load.start_server(__file__, str(chunk))


def recorded(port: int) -> float:
    """The ``ok`` outcomes errclass recorded so far in the server on *port*."""
    conn = bench_asgi.Connection(port)
    try:
        return float(json.loads(conn.get("/cpu")[2])["errclass_ok"])
    finally:
        conn.close()


def run(chunk: int) -> list[_load.Round]:
    """The rounds measured; errclass must have recorded each of its requests."""
    proc, port = start(chunk)
    try:
        args = (str(port), str(proc.pid), str(bench_asgi.PAIRS), str(bench_asgi.BURST))
        out = _load.load(bench_asgi.__file__, *args, str(bench_asgi.CHUNKS * chunk), *PATHS)
        sent = set(out["sent"].values())
        if len(sent) != 1:
            raise RuntimeError(f"unequal requests per path: {out['sent']}")
        if (got := recorded(port)) != (want := sent.pop()):
            raise RuntimeError(f"errclass recorded {got} ok outcomes, not {want}")
        return list(out["rounds"])
    finally:
        _load.stop(proc)


def in_process(rounds: int = 15, n: int = 4000) -> tuple[float, float, float]:
    """µs per request of a trivial handler called bare, through errclass's middleware,
    and through a second instance of the bare call (A/A), on one request made with
    aiohttp's own ``make_mocked_request`` and resolved by a real router: the least
    of *rounds* interleaved rounds of *n* requests each."""
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from errclass.integrations import aiohttp as errclass_aiohttp

    response = web.Response(text="x")

    async def handler(request: web.Request) -> web.StreamResponse:
        return response

    class Transport:  # the connection's transport as the request reads it: open
        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

    async def measure() -> tuple[float, float, float]:
        app = web.Application()
        app.router.add_get("/s", handler)
        request = make_mocked_request("GET", "/s", app=app, transport=Transport())
        request._match_info = await app.router.resolve(request)
        middleware = errclass_aiohttp.middleware()

        async def bare() -> None:
            for _ in range(n):
                await handler(request)

        async def instrumented() -> None:
            for _ in range(n):
                await middleware(request, handler)

        best = [float("inf")] * 3
        for _ in range(rounds):
            for k, fn in enumerate((bare, instrumented, bare)):
                t0 = time.perf_counter()
                await fn()
                best[k] = min(best[k], (time.perf_counter() - t0) / n * 1e6)
        return best[0], best[1], best[2]

    return asyncio.run(measure())


def main() -> None:
    began = time.monotonic()
    bare, instrumented, again = in_process()
    print(
        f"In process (a trivial handler, least of interleaved rounds): bare {bare:.2f} µs, "
        f"through the middleware {instrumented:.2f} µs, bare again {again:.2f} µs a request: "
        f"errclass costs {instrumented - bare:.2f} µs a request.\n"
    )
    print(
        f"one aiohttp server process per table, serving a {bench_asgi.CHUNKS}-chunk "
        f"StreamResponse from one sub-application per endpoint; {bench_asgi.PAIRS} ABBA "
        f"pairs of rounds of one {bench_asgi.BURST}-request burst per endpoint, measured "
        "as bench_asgi measures (server CPU clock, median of per-pair ratios, 95% "
        f"bootstrap interval). Load average at the start: {_load.load_average()}.\n"
    )
    print(
        "| stream | endpoint | req/s (wall clock) | server CPU µs/request | ratio | 95% interval |"
    )
    print("|---|---|---:|---:|---:|---|")
    for chunk in bench_asgi.WORKLOADS:
        rounds = run(chunk)
        what = f"aiohttp, {bench_asgi.CHUNKS} x {chunk // 1024} KB"
        for path in PATHS:
            _load.table_row(what, NAMES[path], rounds, path, PATHS[0])
    print(f"\nLoad average at the end: {_load.load_average()}; {time.monotonic() - began:.0f} s.")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
