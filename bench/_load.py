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
from typing import Any

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


def start_server(script: str, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``script --serve *args PORT`` in its own process group, with the bench
    directory on its path; return it and its port once it listens."""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.realpath(script))}
    return start(lambda port: [sys.executable, script, "--serve", *args, str(port)], env)


def start(
    argv: Callable[[int], list[str]], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server ``argv(port)`` on a free port in its own process group; return
    it and its port once it listens. A port free when picked may be taken before the
    server binds it (by another process's connection): a server that exits before it
    listens is started again on another port, twice at most."""
    for _ in range(2):
        try:
            return _listening(argv, env)
        except RuntimeError:  # it exited before it listened
            pass
    return _listening(argv, env)


def _listening(
    argv: Callable[[int], list[str]], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(argv(port), env=env, start_new_session=True)
    try:
        wait_listening(port, proc)
    except BaseException:
        stop(proc)  # nothing to do for one that exited
        raise
    return proc, port


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


def load(script: str, *args: str, timeout: float = 900) -> Any:
    """Run ``script --load *args`` (the load generator) and read what it printed
    (JSON: its rounds) from stdout."""
    argv = [sys.executable, script, "--load", *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{out.stderr}")
    return json.loads(out.stdout)


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


# -- the server's own CPU clock, ABBA rounds and intervals (bench_asgi) -------------


def cpu_clock(pid: int) -> Callable[[], float]:
    """A reader of process *pid*'s CPU seconds (all its threads, user + system),
    read from outside it: Linux's per-process CPU clock (``clock_getcpuclockid``),
    exact to the nanosecond, unlike the 10 ms ticks of ``/proc/<pid>/stat``."""
    clock = ((~pid) << 3) | 2  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
    try:
        time.clock_gettime(clock)
    except OSError:  # not Linux, or another PID namespace: the 10 ms ticks, then
        ticks = os.sysconf("SC_CLK_TCK")

        def from_proc() -> float:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

        return from_proc
    return lambda: time.clock_gettime(clock)


def abba(paths: Sequence[str], pairs: int, measure: Callable[[str], list[float]]) -> list[Round]:
    """*pairs* pairs of rounds, one burst per path each: an order, then the same order
    reversed (ABBA: a drift in the machine's speed over a pair weighs on every path
    alike), the order rotated from pair to pair so that no path always follows the
    same one (what a burst leaves behind, e.g. garbage, lands on each path alike)."""
    out = []
    for k in range(pairs):
        i = k % len(paths)
        order = [*paths[i:], *paths[:i]]
        out.append({path: measure(path) for path in order})
        out.append({path: measure(path) for path in reversed(order)})
    return out


def cpu_ratios(rounds: list[Round], path: str, base: str) -> list[float]:
    """Per pair of rounds (ABBA), *path*'s requests per server CPU-second over
    *base*'s: each path's CPU time and requests summed over the pair."""

    def per_cpu(a: Round, b: Round, p: str) -> float:
        return (a[p][0] + b[p][0]) / (a[p][2] + b[p][2])

    pairs = zip(rounds[::2], rounds[1::2], strict=True)
    return [per_cpu(a, b, path) / per_cpu(a, b, base) for a, b in pairs]


def median_interval(values: Sequence[float], resamples: int = 2000) -> tuple[float, float, float]:
    """The median of *values* and a 95% percentile-bootstrap interval of it (fixed
    seed: the same rounds give the same interval)."""
    import random

    rng = random.Random(0)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    return (
        statistics.median(values),
        medians[int(0.025 * resamples)],
        medians[int(0.975 * resamples) - 1],
    )


def table_row(what: str, name: str, rounds: list[Round], path: str, base: str) -> float:
    """Print *path*'s row of a capacity table (wall-clock req/s, server CPU µs per
    request, its ratio to *base* with the interval); return the ratio."""
    rps = statistics.median(r[path][0] / r[path][1] for r in rounds)
    us = statistics.median(r[path][2] / r[path][0] * 1e6 for r in rounds)
    ratio, low, high = median_interval(cpu_ratios(rounds, path, base))
    print(
        f"| {what} | {name} | {rps:,.0f} | {us:,.0f} | {ratio:.3f} | {low:.3f} to {high:.3f} |",
        flush=True,
    )
    return ratio


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
