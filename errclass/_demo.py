"""``errclass demo``: a real run on loopback.

A standard-library streaming server whose producer is wrapped in
``errclass.track()``; real clients complete, close mid-stream, reset the
connection, and stall past the server's deadline; one stream tees to
``/dev/full``. Prints what each ended as, and the Prometheus exposition.
"""

from __future__ import annotations

import argparse
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any

CHUNK = b"x" * 16384
SERVER_DEADLINE = 0.5  # seconds a single write may block before the server gives up


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="a real loopback run: clients that finish, leave, reset, stall")
    p.add_argument("--rounds", type=int, default=3, help="streams per scenario (default 3)")
    p.set_defaults(func=run)


def _handler(produce: Callable[[BufferedIOBase, str], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.connection.settimeout(SERVER_DEADLINE)
            if self.path == "/stall":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            try:
                produce(self.wfile, self.path)
            except Exception:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _client(port: int, scenario: str) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if scenario == "stall":  # small buffers, so the server's writes block soon
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /{scenario} HTTP/1.1\r\nHost: demo\r\n\r\n".encode())
    try:
        if scenario in ("complete", "disk_full"):
            while sock.recv(65536):
                pass
        elif scenario == "leave":
            sock.recv(65536)
        elif scenario == "reset":
            sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif scenario == "stall":
            time.sleep(SERVER_DEADLINE * 3)  # read nothing: the server's writes block
    finally:
        sock.close()


class _OneLine(logging.Formatter):
    """Log lines without tracebacks, so the demo's output stays readable."""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_info, record.exc_text = None, None
        return super().format(record)


def _show_logs() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_OneLine("  log %(levelname)-7s %(message)s"))
    log = logging.getLogger("errclass")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def run(args: argparse.Namespace) -> int:
    import errclass
    from errclass._sinks._prometheus import default_sink

    _show_logs()

    events: list[errclass.Event] = []

    # The default counter errclass_outcomes_total{producer, reason}, plus a list.
    @errclass.track(default_sink(), events.append, name="demo.download")
    def download(out: BufferedIOBase, path: str) -> None:
        disk = open("/dev/full", "wb", buffering=0) if path == "/disk_full" else None  # noqa: SIM115
        try:
            for _ in range(20 if path == "/complete" else 2000):
                if disk is not None:
                    disk.write(CHUNK)  # tee to a full disk: a real server-side fault
                out.write(CHUNK)
                time.sleep(0.0005)
        finally:
            if disk is not None:
                disk.close()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(download))
    server.daemon_threads = True
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scenarios = ["complete", "leave", "reset", "stall", "disk_full"]
    expected = {
        "complete": "ok",
        "leave": "client_gone",
        "reset": "client_gone",
        "stall": "deadline_exceeded",
        "disk_full": "write_failed",
    }
    results: dict[str, list[str]] = {s: [] for s in scenarios}
    try:
        for scenario in scenarios:
            for _ in range(args.rounds):
                before = len(events)
                _client(port, scenario)
                _wait(lambda b=before: len(events) > b, 5.0)  # type: ignore[misc]
                results[scenario] += [e.outcome.reason.value for e in events[before:]]
    finally:
        server.shutdown()
        server.server_close()
    return _report(results, expected, events)


def _wait(cond: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)


def _report(results: dict[str, list[str]], expected: dict[str, str], events: list[Any]) -> int:
    from prometheus_client import REGISTRY, generate_latest

    print(f"\n{'scenario':<12} {'expected':<18} {'recorded':<40} ok?")
    good = True
    for scenario, got in results.items():
        fine = bool(got) and all(r == expected[scenario] for r in got)
        good &= fine
        verdict = "yes" if fine else "NO"
        print(f"{scenario:<12} {expected[scenario]:<18} {', '.join(got):<40} {verdict}")
    by_type = sorted({(e.outcome.reason.value, e.outcome.error_type or "-") for e in events})
    print("\nreason / error.type seen:", ", ".join(f"{r} ({t})" for r, t in by_type))
    print("\nPrometheus exposition (errclass lines):")
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith("errclass_outcomes_total"):
            print(" ", line)
    print("\nall scenarios classified as expected" if good else "\nSOME SCENARIOS DIFFER")
    return 0 if good else 1
