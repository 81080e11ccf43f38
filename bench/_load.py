"""What the server benches share: a server process on a free loopback port, a load
generator in a process of its own, bounded bursts whose order rotates each round,
and medians of per-round ratios.

A round is ``{path: [requests, wall seconds, server CPU seconds]}``: one burst
per endpoint. Only one endpoint's burst runs at a time, so the server's CPU time
over a burst is that endpoint's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

Round = dict[str, list[float]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Poll until *proc* accepts connections on *port* (or exited, or *timeout*)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"the server did not listen on {port} within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server started with ``start_new_session=True``: its own process group."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def burst(
    request: Callable[[], Callable[[], object]], cpu: Callable[[], float], n: int, threads: int
) -> list[float]:
    """``[requests, wall seconds, server CPU seconds]`` of *n* requests on *threads*
    threads. *request* is called once per thread (e.g. to connect) and returns the
    function that makes one request; *cpu* reads the server's CPU seconds."""
    per_thread = n // threads
    ready = [request() for _ in range(threads)]

    def run(one: Callable[[], object]) -> None:
        for _ in range(per_thread):
            one()

    workers = [threading.Thread(target=run, args=(one,)) for one in ready]
    cpu0, t0 = cpu(), time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    wall = time.perf_counter() - t0
    return [per_thread * threads, wall, cpu() - cpu0]


def schedule(
    paths: Sequence[str], rounds: int, measure: Callable[[str], list[float]]
) -> list[Round]:
    """*rounds* rounds of one burst per path, the order rotated every round so
    that other load on the machine hits every path alike."""
    out = []
    for i in range(rounds):
        k = i % len(paths)
        order = [*paths[k:], *paths[:k]]
        out.append({path: measure(path) for path in order})
    return out


def load(script: str, *args: str, timeout: float = 900) -> list[Round]:
    """Run ``script --load *args`` (the load generator) and read its rounds from stdout."""
    argv = [sys.executable, script, "--load", *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{out.stderr}")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def ratios(rounds: list[Round], path: str, base: str) -> tuple[float, float, float, float]:
    """Median req/s, its median per-round ratio to *base*, median requests per server
    CPU-second, and its median per-round ratio to *base*."""
    rps = [r[path][0] / r[path][1] for r in rounds]
    cap = [r[path][0] / r[path][2] for r in rounds]
    base_rps = [r[base][0] / r[base][1] for r in rounds]
    base_cap = [r[base][0] / r[base][2] for r in rounds]
    return (
        statistics.median(rps),
        statistics.median(a / b for a, b in zip(rps, base_rps, strict=True)),
        statistics.median(cap),
        statistics.median(a / b for a, b in zip(cap, base_cap, strict=True)),
    )
