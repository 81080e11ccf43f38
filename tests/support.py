"""Shared test helpers: required tools, free loopback ports, processes stopped by PID,
and bounded polling on conditions (tests never wait with a fixed sleep)."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REQUIRE_TOOLS = os.environ.get("ERRCLASS_REQUIRE_TOOLS") == "1"
POLL = 0.05  # seconds between two looks at a condition

T = TypeVar("T")


def _describe(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


def _look(
    cond: Callable[[], T], deadline: float, timeout: float, what: str | Callable[[], str]
) -> T:
    """One look at *cond* for the waits below; fails the test once *deadline* passed."""
    value = cond()
    if not value and time.monotonic() >= deadline:
        detail = _describe(what) or getattr(cond, "__name__", repr(cond))
        pytest.fail(f"not true within {timeout}s: {detail}")
    return value


def wait_until(
    cond: Callable[[], T], timeout: float = 10.0, what: str | Callable[[], str] = ""
) -> T:
    """Poll *cond* until it returns a truthy value and return that value; fail the
    test after *timeout* seconds, saying *what* was awaited (a string, or a callable
    for a message built from the state at that moment)."""
    deadline = time.monotonic() + timeout
    while not (value := _look(cond, deadline, timeout, what)):
        time.sleep(POLL)
    return value


async def async_wait_until(
    cond: Callable[[], T], timeout: float = 10.0, what: str | Callable[[], str] = ""
) -> T:
    """:func:`wait_until` for a coroutine test: yields to the event loop between looks."""
    deadline = time.monotonic() + timeout
    while not (value := _look(cond, deadline, timeout, what)):
        await asyncio.sleep(POLL)
    return value


def holds_for(cond: Callable[[], bool], seconds: float) -> bool:
    """Poll *cond* for *seconds*; False as soon as it stops holding (a check that
    something does NOT happen: it ends early on a failure, never passes early)."""
    deadline = time.monotonic() + seconds
    while cond():
        if time.monotonic() >= deadline:
            return True
        time.sleep(POLL)
    return False


def require_tool(name: str) -> str:
    """The path of *name*; skips locally, fails under ERRCLASS_REQUIRE_TOOLS=1 (CI)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (make test installs it as root: apt-get install prometheus)"
        if REQUIRE_TOOLS:
            pytest.fail(msg + "; ERRCLASS_REQUIRE_TOOLS=1 forbids skipping")
        pytest.skip(msg)
    return path


def shared_fixture(*parts: str) -> Path:
    """A file under ../shared/fixtures; skips in a user's checkout, which has no ../shared."""
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        if REQUIRE_TOOLS:
            pytest.fail(f"{path} is missing; CI always has ../shared")
        pytest.skip(f"{path} is missing: ../shared exists only beside the project's own checkout")
    return path


def check_bursts(asgi: Any, port: int, pid: int, paths: Sequence[str]) -> None:
    """Time two bursts of every path as the bench does, with *asgi* (the bench_asgi
    module) reading raw responses checked against the first one parsed and the server's
    CPU clock from outside it, and check what they counted."""
    loader = asgi.Loader(port, pid, 1024 * asgi.CHUNKS)
    try:
        bursts = {path: loader.burst(path, 2 * asgi.CONCURRENCY) for path in paths}
    finally:
        loader.control.close()
    assert loader.sent == dict.fromkeys(paths, 3 * asgi.CONCURRENCY)  # 1 warm-up + 2 each
    for requests, wall, cpu in bursts.values():
        assert (requests, wall > 0, cpu > 0) == (2 * asgi.CONCURRENCY, True, True)


# Ports for the servers tests start: below the kernel's ephemeral range (32768-60999),
# so no client socket of the suite holds one, and a block per xdist worker, handed out
# in turn, so two workers (or two servers of one test) never pick the same port. A
# port the kernel gave out by bind(0) was free when asked but could be taken by a
# client's connection, or the other worker's server, before the server bound it
# ("Address already in use": CI stop 25, a hypercorn cell). Each process starts at a
# random place in its block, so that two suites run at once on one machine (two
# checkouts) do not walk the same ports in step.
_PORT_BLOCK = 2500
_PORT_BASE = 22000
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_next_port = (
    _PORT_BASE
    + _PORT_BLOCK * (int(_WORKER[2:]) % 3 if _WORKER[2:].isdigit() else 3)
    + random.randrange(_PORT_BLOCK)
)


async def cancelled_repeatedly(aw: Awaitable[object], times: int = 3) -> None:
    """Run *aw* in a task, cancel it *times* times, 10 ms apart once it has run 20 ms,
    and check that it ends cancelled (the caller of a fan-out pressing Ctrl-C again)."""
    task = asyncio.ensure_future(aw)
    await asyncio.sleep(0.02)
    for _ in range(times):
        task.cancel()
        await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await task


def free_port() -> int:
    """A loopback port of this worker's block that nothing is bound to now."""
    global _next_port
    block = (_next_port - _PORT_BASE) // _PORT_BLOCK * _PORT_BLOCK + _PORT_BASE
    for _ in range(_PORT_BLOCK):
        port = _next_port
        _next_port = block + (port + 1 - block) % _PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a TIME_WAIT port is skipped
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in 127.0.0.1:{block}-{block + _PORT_BLOCK - 1}")


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop *proc* by its own PID (and its process group): SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@contextmanager
def running(
    argv: Sequence[str],
    port: int | None = None,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run *argv* in its own process group, wait for *port*, always stop it by PID."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        list(argv),
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    try:
        if port is not None:
            wait_for_port(port, timeout, proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def modules_imported(code: str, watched: Iterable[str]) -> list[str]:
    """Which of the *watched* modules a fresh interpreter has imported once it has
    run *code* (sorted; the test fails if *code* fails)."""
    found = f"sorted({set(watched)!r} & set(sys.modules))"
    script = f"{code}\nimport json, sys\nprint(json.dumps({found}))\n"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    imported: list[str] = json.loads(out.stdout)
    return imported


@overload
def errclass_cli(
    *args: str, timeout: float = ..., cwd: Path | None = ..., text: Literal[True] = ...
) -> subprocess.CompletedProcess[str]: ...
@overload
def errclass_cli(
    *args: str, timeout: float = ..., cwd: Path | None = ..., text: Literal[False]
) -> subprocess.CompletedProcess[bytes]: ...


def errclass_cli(
    *args: str, timeout: float = 120, cwd: Path | None = None, text: bool = True
) -> subprocess.CompletedProcess[Any]:
    """``python -m errclass ARGS`` as a user runs it (no check): text output, or
    bytes with ``text=False`` (for output that may not decode)."""
    return subprocess.run(
        [sys.executable, "-m", "errclass", *args],
        capture_output=True,
        text=text,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def promtool_rules(
    *paths: Path | str, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``promtool check rules FLAGS PATHS`` (the test fails without promtool under CI)."""
    return subprocess.run(
        [require_tool("promtool"), "check", "rules", *flags, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def scrape(url: str, timeout: float = 5.0) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of a Prometheus exposition over HTTP: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# -- helpers of the WSGI/gRPC matrix (added by the wsgi/grpc integration) -----


def outcomes(url: str, producer: str) -> dict[str, float]:
    """``errclass_outcomes_total`` by reason for *producer*, scraped from *url*."""
    samples = scrape(url)
    reasons = ("ok", "client_gone", "deadline_exceeded", "write_failed")
    return {
        r: sample(samples, "errclass_outcomes_total", producer=producer, reason=r) for r in reasons
    }


SETTLE = 0.3  # seconds in which a double record would show up on a scrape


def wait_for_outcomes(
    url: str, producer: str, before: dict[str, float], count: int, timeout: float = 15.0
) -> dict[str, float]:
    """Poll *url* until *count* more outcomes of *producer* exist than in *before*
    (bounded by *timeout*), watch for :data:`SETTLE` seconds that no extra one
    arrives, and return the per-reason deltas."""

    def delta() -> dict[str, float]:
        now = outcomes(url, producer)
        return {r: now[r] - before.get(r, 0.0) for r in now if now[r] - before.get(r, 0.0)}

    def total() -> float:
        try:
            return sum(delta().values())
        except OSError:  # e.g. a gunicorn worker being replaced
            return -1.0

    deadline = time.monotonic() + timeout
    while (seen := total()) < count and time.monotonic() < deadline:
        time.sleep(POLL)
    if seen < 0:
        return delta()  # the endpoint is still down at the deadline: raise its error
    # Anything recorded twice shows up within this window: watch it, and return at
    # once if the count moves (the caller's exact comparison then fails).
    holds_for(lambda: total() == seen, SETTLE)
    return delta()


def rst_close(sock: socket.socket) -> None:
    """Close *sock* with a TCP RST (``SO_LINGER`` on, timeout 0)."""
    import struct

    if sock.fileno() == -1:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def fin_close(sock: socket.socket) -> None:
    """Close *sock* with a FIN (an orderly shutdown)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def http_get(port: int, path: str, read: int = 1, timeout: float = 5.0) -> socket.socket:
    """A raw HTTP/1.1 GET on loopback; returns the socket after *read* bytes arrived."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    got = 0
    while got < read:
        data = sock.recv(65536)
        if not data:
            break
        got += len(data)
    return sock


def read_request_head(conn: socket.socket) -> bytes | None:
    """An HTTP request's head, as far as its blank line; None if the client left first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


@contextmanager
def resetting_upstream(body: bytes = b"u" * 1000, delay: float = 0.05) -> Iterator[int]:
    """A loopback HTTP upstream that promises a long body, sends *body*, then resets
    the connection (RST). Yields its port; the accepting thread stops with the block."""
    import struct
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stopping = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                if read_request_head(conn) is None:
                    return
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"
                conn.sendall(head + body)
                time.sleep(delay)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stopping.set()
        thread.join(5)
        server.close()


# -- helpers of the ASGI/aiohttp matrix ------------------------------------------


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> None:
    """Read *sock* until the server closes it or a chunked body ends (hypercorn on
    trio keeps the connection open after ``Connection: close``), then close it."""
    sock.settimeout(timeout)
    tail = b""
    with sock:
        while data := sock.recv(65536):
            tail = (tail + data)[-7:]
            if tail.endswith(b"\r\n0\r\n\r\n"):
                return


def stall_reading(port: int, path: str, seconds: float) -> None:
    """GET *path* with a tiny receive buffer, read nothing for *seconds*, then reset."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    sock.recv(1)  # the response started; from now on read nothing
    time.sleep(seconds)
    rst_close(sock)


def counted_streams(
    url: str, producer: str, scenario: str, streams: int, client: Callable[[], None]
) -> tuple[dict[str, float], float]:
    """Run *client* *streams* times against a matrix server; return the new outcomes
    of *producer* by reason and the new ``matrix_streams_started_total{scenario}``."""
    before = scrape(url)
    reasons = ("ok", "client_gone", "deadline_exceeded", "write_failed")
    outcomes_before = {
        r: sample(before, "errclass_outcomes_total", producer=producer, reason=r) for r in reasons
    }
    started_before = sample(before, "matrix_streams_started_total", scenario=scenario)
    for _ in range(streams):
        client()
    deltas = wait_for_outcomes(url, producer, outcomes_before, streams)
    started = sample(scrape(url), "matrix_streams_started_total", scenario=scenario)
    return deltas, started - started_before


def leave_after(close: Callable[[socket.socket], None], read: int) -> Callable[[int, str], None]:
    """A client that reads *read* bytes of the stream at *path*, then leaves by *close*
    (``fin_close`` or ``rst_close``)."""

    def client(port: int, path: str) -> None:
        close(http_get(port, path, read=read))

    return client


def read_stream(port: int, path: str) -> None:
    """A client that reads the stream at *path* until the server closes it."""
    read_to_end(http_get(port, path, read=1))


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A stdlib request handler that logs nothing, with a one-call 200 reply."""

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded stdlib HTTP server on a free loopback port for *handler*; yields its
    base URL and stops it (and its thread) on exit."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
