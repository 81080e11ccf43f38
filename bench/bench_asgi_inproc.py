"""What ``ErrclassMiddleware`` costs per request, in-process, on uvicorn's own objects.

No socket and no load generator: uvicorn's ``HttpToolsProtocol`` (the protocol
``uvicorn.run`` picks when httptools is installed) is given a transport that
keeps nothing of what it is written, then fed one keep-alive ``GET`` after
another; each request is one real ``RequestResponseCycle`` running the
application in its own task, as on a server. The application is the one
``bench_asgi.py`` serves: a Starlette or FastAPI ``StreamingResponse`` of 20
chunks (1 KB and 16 KB), uninstrumented and with
``app.add_middleware(ErrclassMiddleware)`` (default counter and logger); and,
to time the middleware alone, a bare ASGI application that sends the same 22
messages, without and with ``ErrclassMiddleware(app)``.

The two, and a second uninstrumented instance (an A/A pair: the noise), take
turns in short rounds, each app in worker processes of its own (three: where a
process's code and objects land in memory moves its time by a few µs per
request) that serve a round when asked and then wait. A round is timed in CPU
seconds of the worker's thread; per worker, its fastest round (the slower ones
measure the other processes on a shared machine), per app the mean over its
workers, then the cost of the middleware in µs per request and the ratio of
the per-request times. (In one shared process the uninstrumented apps ran
1-3 µs per request slower next to the instrumented one: the interpreter's
state is per process, the specialized bytecode of the code they share and the
shared attribute keys of a type, which hid that much of the middleware's cost.)
This is the server-CPU side of ``bench_asgi.py``'s capacity ratio without the
kernel, the client or the load generator.
Run: ``python bench/bench_asgi_inproc.py`` or ``python bench/run.py bench_asgi_inproc``;
``ERRCLASS_BENCH_INPROC_ROUNDS`` / ``ERRCLASS_BENCH_INPROC_BURST`` /
``ERRCLASS_BENCH_INPROC_PROCESSES`` set the rounds, the requests per round and the
worker processes per app.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

CHUNKS = 20
WORKLOADS = (1024, 16384)
ROUNDS = int(os.environ.get("ERRCLASS_BENCH_INPROC_ROUNDS", "100"))
BURST = int(os.environ.get("ERRCLASS_BENCH_INPROC_BURST", "50"))
WARM = 2  # untimed requests before each timed round
#: Worker processes per app (see the module docstring): per app, the mean of theirs.
PROCESSES = int(os.environ.get("ERRCLASS_BENCH_INPROC_PROCESSES", "3"))
NAMES = {
    "bare": "bare ASGI app (the middleware alone)",
    "starlette": "Starlette",
    "fastapi": "FastAPI",
}
REQUEST = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class _Transport(asyncio.Transport):
    """A connected transport that counts what it is written and keeps nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: Any) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _body(chunk: bytes) -> AsyncIterator[bytes]:
    for _ in range(CHUNKS):
        yield chunk


def _bare(chunk: bytes) -> Any:
    """The same response as a bare ASGI application: start, 20 chunks, the end."""
    start = {"type": "http.response.start", "status": 200, "headers": []}
    part = {"type": "http.response.body", "body": chunk, "more_body": True}
    end = {"type": "http.response.body", "body": b"", "more_body": False}

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        scope["endpoint"] = bare  # named as Starlette names an endpoint
        await send(start)
        for _ in range(CHUNKS):
            await send(part)
        await send(end)

    return bare


def application(framework: str, chunk: int, instrumented: bool) -> Any:
    """``bench_asgi.py``'s endpoint: a 20-chunk ``StreamingResponse`` at ``/stream``
    (*framework* ``"bare"``: the same messages from a bare ASGI application)."""
    data = b"x" * chunk
    if framework == "bare":
        from errclass.integrations.asgi import ErrclassMiddleware

        return ErrclassMiddleware(_bare(data)) if instrumented else _bare(data)
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import StreamingResponse
        from starlette.routing import Route

        async def stream(request: Request) -> StreamingResponse:
            return StreamingResponse(_body(data), media_type="application/octet-stream")

        app: Any = Starlette(routes=[Route("/stream", stream)])
    else:
        from fastapi import FastAPI
        from fastapi.responses import StreamingResponse as FastAPIStreamingResponse

        app = FastAPI()

        @app.get("/stream")
        async def fastapi_stream() -> FastAPIStreamingResponse:
            return FastAPIStreamingResponse(_body(data), media_type="application/octet-stream")

    if instrumented:
        from errclass.integrations.asgi import ErrclassMiddleware

        app.add_middleware(ErrclassMiddleware)
    return app


class Connection:
    """One keep-alive connection of uvicorn's httptools protocol serving *app*."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        from uvicorn.config import Config
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        from uvicorn.server import ServerState

        config = Config(app, http="httptools", lifespan="off", access_log=False)
        self.state = ServerState()
        self.protocol = HttpToolsProtocol(config, self.state, {}, _loop=loop)
        self.transport = _Transport()
        self.protocol.connection_made(self.transport)

    async def requests(self, n: int) -> float:
        """Serve *n* requests one after another; their wall-clock seconds."""
        tasks, data_received = self.state.tasks, self.protocol.data_received
        t0 = time.thread_time()
        for _ in range(n):
            data_received(REQUEST)
            (task,) = tasks
            await task
        return time.thread_time() - t0

    def close(self) -> None:
        self.protocol.connection_lost(None)


class Worker:
    """One application served in a process of its own (see the module docstring)."""

    def __init__(self, framework: str, chunk: int, instrumented: bool) -> None:
        args = [sys.executable, __file__, "--worker", framework, str(chunk), str(int(instrumented))]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def requests(self, n: int) -> float:
        """Have the worker serve *n* requests; their CPU seconds there."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{n}\n")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the bench worker exited ({self.process.wait()})")
        return float(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


async def _serve(framework: str, chunk: int, instrumented: bool) -> None:
    """The worker: warm up (and check that a response is whole), then serve each
    round asked for on stdin, answering with its CPU seconds."""
    conn = Connection(application(framework, chunk, instrumented), asyncio.get_running_loop())
    try:
        before = conn.transport.written
        await conn.requests(1)
        if conn.transport.written - before < CHUNKS * chunk:
            raise RuntimeError("the response was not written whole")
        await conn.requests(BURST // 4)
        for line in sys.stdin:
            await conn.requests(WARM)  # caches the other processes' turns left cold
            print(await conn.requests(int(line)), flush=True)
    finally:
        conn.close()


def _row(framework: str, chunk: int) -> dict[str, float]:
    """µs per request of the uninstrumented app (``plain``), a second instance of it
    (``control``: their difference is the noise) and ``errclass``: per app, the
    mean over its worker processes of each one's fastest round."""
    apps = {"plain": False, "control": False, "errclass": True}
    workers: dict[tuple[str, int], Worker] = {}
    try:
        for k in range(PROCESSES):
            for key, instrumented in apps.items():
                workers[key, k] = Worker(framework, chunk, instrumented)
        best = {each: float("inf") for each in workers}
        order = list(workers)
        for i in range(ROUNDS):
            # Rotated orders (abc, bca, cab, ...): each worker takes each place about
            # equally often and never follows itself, so each of its rounds is timed
            # after another process ran (and WARM requests).
            shift = i % len(order)
            for each in order[shift:] + order[:shift]:
                best[each] = min(best[each], workers[each].requests(BURST) / BURST)
    finally:
        for worker in workers.values():
            worker.close()
    return {key: sum(best[key, k] for k in range(PROCESSES)) / PROCESSES * 1e6 for key in apps}


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # uvicorn's "auto" loop is asyncio's then too
        return "asyncio"
    return "uvloop"


def _table() -> None:
    print(
        f"uvicorn's HttpToolsProtocol in-process (loop: {_loop_name()}), a {CHUNKS}-chunk "
        f"StreamingResponse per keep-alive request; {ROUNDS} interleaved rounds of {BURST} "
        f"requests per worker, {PROCESSES} worker processes per app, per app the mean of "
        "each worker's fastest round (CPU time of the worker's thread)\n"
    )
    print(
        "| framework, stream | uninstrumented µs/req | errclass µs/req | cost µs/req | ratio "
        "| A/A: a second uninstrumented instance, cost µs/req |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for framework in ("bare", "starlette", "fastapi"):
        for chunk in WORKLOADS if framework != "bare" else WORKLOADS[:1]:
            t = _row(framework, chunk)
            plain, instrumented = t["plain"], t["errclass"]
            print(
                f"| {NAMES[framework]}, {CHUNKS} x {chunk // 1024} KB | {plain:.1f} | "
                f"{instrumented:.1f} | {instrumented - plain:.1f} | {plain / instrumented:.3f} "
                f"| {t['control'] - plain:+.1f} |",
                flush=True,
            )


def _run(main: Any) -> None:
    try:
        import uvloop
    except ImportError:  # uvicorn's "auto" loop is asyncio's then too
        asyncio.run(main)
    else:
        uvloop.run(main)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        framework, chunk, instrumented = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
        _run(_serve(framework, chunk, instrumented))
    else:
        _table()


if __name__ == "__main__":
    sys.exit(main())
