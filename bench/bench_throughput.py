"""Throughput of a streaming WSGI endpoint with and without errclass, same server, same run.

One gunicorn server (1 sync worker) serves the same generator three ways:
``/plain`` and ``/control`` as is (an A/A pair: their ratio is the noise
floor), ``/tracked`` behind ``ErrclassMiddleware`` (default counter and
logger). A load generator in a second process opens a loopback connection per
request and reads the whole chunked body, in bounded bursts whose order rotates
every round, so that other load on the machine hits the three alike. Per round
and endpoint it takes

* requests per second of wall-clock time, and
* requests per CPU-second of the worker's request handling, from gunicorn's
  ``pre_request``/``post_request`` hooks (``time.process_time_ns()``): what
  errclass costs the server, and far less sensitive to a busy machine.

Ratios are medians of the per-round ratios against ``/plain``. A last row
times the middleware alone, in-process. Run: ``python bench/bench_throughput.py``
(or ``make bench``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import _load  # bench/ is on sys.path: this script's directory, or gunicorn's PYTHONPATH

CHUNKS = 20
WORKLOADS = (1024, 16384)  # chunk sizes: a 20 KB and a 320 KB stream
CHUNK = b"x" * int(os.environ.get("ERRCLASS_BENCH_CHUNK", "1024"))
ROUNDS = int(os.environ.get("ERRCLASS_BENCH_WSGI_ROUNDS", "40"))
BURST, CONCURRENCY = 300, 4
PATHS = ("/plain", "/tracked", "/control")
TARGET = 0.97

# -- the server (gunicorn imports this module as the app and as its config) ----------


def body() -> Iterator[bytes]:
    for _ in range(CHUNKS):
        yield CHUNK


def plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return body()


def _tracked() -> Callable[..., Iterable[bytes]]:
    from errclass.integrations.wsgi import ErrclassMiddleware

    return ErrclassMiddleware(plain, name="bench_throughput")


tracked = _tracked() if os.environ.get("ERRCLASS_BENCH_SERVER") else plain

# Per path: [requests, CPU nanoseconds] of the worker between the two hooks. It
# leaves out accept and parsing, the same for every path, so the ratio it
# gives is, if anything, pessimistic for errclass.
_cpu: dict[str, list[int]] = {}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO")
    if path == "/cpu":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(_cpu).encode()]
    return (tracked if path == "/tracked" else plain)(environ, start_response)


def pre_request(worker: Any, req: Any) -> None:
    req.errclass_cpu0 = time.process_time_ns()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    acc = _cpu.setdefault(req.path, [0, 0])
    acc[0] += 1
    acc[1] += time.process_time_ns() - req.errclass_cpu0


# -- the load generator (its own process) -------------------------------------------


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    if not got.endswith(b"0\r\n\r\n"):
        raise RuntimeError(f"incomplete response to {path}: {got[:60]!r}...{got[-20:]!r}")
    return got


def _cpu_of(port: int, path: str) -> float:
    body = _get(port, "/cpu").partition(b"\r\n\r\n")[2]
    size, _, rest = body.partition(b"\r\n")
    return int(json.loads(rest[: int(size, 16)]).get(path, [0, 0])[1]) / 1e9


def measure(port: int, path: str) -> list[float]:
    """``[requests, wall seconds, worker CPU seconds]`` of one burst of GETs."""
    return _load.burst(
        lambda: lambda: _get(port, path), lambda: _cpu_of(port, path), BURST, CONCURRENCY
    )


# -- the run ------------------------------------------------------------------------


def _in_process_cost(n: int = 20_000) -> float:
    """Microseconds the middleware adds per request, timed on the app alone."""
    from errclass.integrations.wsgi import ErrclassMiddleware

    wrapped = ErrclassMiddleware(plain, name="bench_throughput_inproc")

    def per_call(wsgi: Callable[..., Iterable[bytes]]) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            response = wsgi({}, lambda *a: None)
            for _chunk in response:
                pass
            response.close()  # type: ignore[attr-defined]
        return (time.perf_counter() - t0) / n * 1e6

    per_call(plain), per_call(wrapped)  # warm up
    return min(per_call(wrapped) for _ in range(3)) - min(per_call(plain) for _ in range(3))


def run(chunk: int) -> list[dict[str, list[float]]]:
    """One server streaming *chunk*-byte chunks; the rounds the load generator measured."""
    here = Path(__file__).resolve().parent
    argv = [
        sys.executable, "-m", "gunicorn", "-k", "sync", "-w", "1", "--timeout", "60",
        "--log-level", "warning", "--chdir", str(here), "-c", "python:bench_throughput",
    ]  # fmt: skip
    # PYTHONPATH: gunicorn reads the config module before it changes directory.
    env = {
        **os.environ,
        "ERRCLASS_BENCH_SERVER": "1",
        "ERRCLASS_BENCH_CHUNK": str(chunk),
        "PYTHONPATH": str(here),
    }
    proc, port = _load.start(
        lambda port: [*argv, "-b", f"127.0.0.1:{port}", "bench_throughput:app"], env
    )
    try:
        _load.load(__file__, str(port), "1")  # warm up every path
        return _load.load(__file__, str(port), str(ROUNDS))
    finally:
        _load.stop(proc)


def main() -> None:
    print(
        f"gunicorn sync, 1 worker; a {CHUNKS}-chunk stream per request; {ROUNDS} rounds of "
        f"one {BURST}-request burst per endpoint (order rotated), {CONCURRENCY} connections, "
        "load generator in its own process; ratios are medians of per-round ratios to "
        "plain WSGI\n"
    )
    print("| stream | endpoint | req/s | ratio | req per worker CPU-s | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    names = {"/plain": "plain WSGI", "/control": "plain WSGI again (A/A noise)"}
    names["/tracked"] = "ErrclassMiddleware"
    verdicts = []
    for chunk in WORKLOADS:
        rounds = run(chunk)
        size = f"{CHUNKS} x {chunk // 1024} KB"
        results = {}
        for path in ("/plain", "/control", "/tracked"):
            rps, rps_ratio, cap, cap_ratio = results[path] = _load.ratios(rounds, path, "/plain")
            print(
                f"| {size} | {names[path]} | {rps:,.0f} | {rps_ratio:.3f} | {cap:,.0f} | "
                f"{cap_ratio:.3f} |"
            )
        verdicts.append(f"{size}: {results['/tracked'][3]:.3f}")
    cost = _in_process_cost()
    print(f"| any | middleware alone, in-process | +{cost:.1f} µs/request | | | |")
    print(
        f"\nerrclass capacity ratio (target {TARGET}): {', '.join(verdicts)}. Wall-clock "
        "ratios on a shared machine move by the A/A rows' spread."
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        port = int(sys.argv[2])
        rounds = _load.schedule(PATHS, int(sys.argv[3]), lambda path: measure(port, path))
        print(json.dumps(rounds))
    else:
        main()
