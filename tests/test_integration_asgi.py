"""The ASGI matrix: real servers on loopback, real clients, counts scraped over HTTP.

One server process per stack (uvicorn h11, uvicorn httptools, hypercorn) serves
``tests/servers/asgi_app.py`` behind ``ErrclassMiddleware``; every scenario
drives a few streams and reads ``errclass_outcomes_total`` from the server's
``/metrics``: the expected reason once per stream, and the outcomes summing to
the streams started.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import (
    ROOT,
    fin_close,
    free_port,
    http_get,
    python_argv,
    resetting_upstream,
    rst_close,
    running,
    sample,
    scrape,
    stop,
    wait_for_outcomes,
)

pytestmark = pytest.mark.slow

STREAMS = 3  # per scenario and stack
APP = "tests.servers.asgi_app"
DEADLINE = 0.5


def server_argv(stack: str, port: int) -> list[str]:
    if stack.startswith("uvicorn"):
        http = stack.split("-")[1]
        return python_argv(
            "-m", "uvicorn", f"{APP}:app", "--host", "127.0.0.1", "--port", str(port),
            "--http", http, "--log-level", "warning", "--timeout-graceful-shutdown", "1",
        )  # fmt: skip
    return python_argv(
        "-m", "hypercorn", f"{APP}:app", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "1",
    )  # fmt: skip


STACKS = ["uvicorn-h11", "uvicorn-httptools", "hypercorn"]


@pytest.fixture(scope="module", params=STACKS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    stack = request.param
    port = free_port()
    log = tmp_path_factory.mktemp(stack) / "server.log"
    env = {"MATRIX_DEADLINE": str(DEADLINE)}
    with running(server_argv(stack, port), port, env=env, cwd=ROOT, log=log):
        yield stack, port


# -- clients -------------------------------------------------------------------


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> None:
    sock.settimeout(timeout)
    with sock:
        while sock.recv(65536):
            pass


def leave(close: Callable[[socket.socket], None], read: int) -> Callable[[int, str], None]:
    def client(port: int, path: str) -> None:
        close(http_get(port, path, read=read))

    return client


def complete(port: int, path: str) -> None:
    read_to_end(http_get(port, path, read=1))


def stall(port: int, path: str) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.recv(1)  # the response started; now read nothing
    time.sleep(DEADLINE + 1.0)
    rst_close(sock)


# scenario -> (path, client, endpoint, started label, expected reason)
SCENARIOS: dict[str, tuple[str, Callable[[int, str], None], str, str, str]] = {
    "completes": ("/completes", complete, "completes", "completes", "ok"),
    "fin_mid_stream": ("/fin", leave(fin_close, 3000), "fin", "fin", "client_gone"),
    "rst_mid_stream": ("/rst", leave(rst_close, 3000), "rst", "rst", "client_gone"),
    "fast_producer_client_leaves": (
        "/fast", leave(fin_close, 200_000), "fast", "fast", "client_gone",
    ),
    "client_stalls_past_deadline": ("/stalled", stall, "Stalled", "stalled", "deadline_exceeded"),
    "write_fault_dev_full": ("/devfull", complete, "devfull", "devfull", "write_failed"),
    "upstream_resets": (
        "/upstream?port={upstream}", complete, "upstream", "upstream", "write_failed",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with resetting_upstream() as port:
        yield port


def run_scenario(port: int, upstream: int, scenario: str) -> tuple[dict[str, float], float, str]:
    path, client, endpoint, label, expected = SCENARIOS[scenario]
    url = f"http://127.0.0.1:{port}/metrics"
    producer = f"{APP}.{endpoint}"
    before = scrape(url)
    outcomes_before = {
        r: sample(before, "errclass_outcomes_total", producer=producer, reason=r)
        for r in ("ok", "client_gone", "deadline_exceeded", "write_failed")
    }
    started_before = sample(before, "matrix_streams_started_total", scenario=label)
    for _ in range(STREAMS):
        client(port, path.format(upstream=upstream))
    deltas = wait_for_outcomes(url, producer, outcomes_before, STREAMS)
    started = sample(scrape(url), "matrix_streams_started_total", scenario=label) - started_before
    return deltas, started, expected


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matrix(server: tuple[str, int], upstream: int, scenario: str) -> None:
    stack, port = server
    deltas, started, expected = run_scenario(port, upstream, scenario)
    assert started == STREAMS, f"{stack}: {started} streams started"
    assert deltas == {expected: STREAMS}, f"{stack} {scenario}: {deltas}"


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn"])
def test_server_shutdown_is_not_client_gone(server_name: str, tmp_path: Path) -> None:
    """A stream the server cancels when its graceful-shutdown timeout (1 s) runs out
    is recorded as the server's deadline, never as a client leaving.

    The server runs embedded (``python -m tests.servers.asgi_serve``): uvicorn's
    and hypercorn's own command lines end the process right after cancelling,
    before a cancelled request can record anything (see the README matrix)."""
    port, events = free_port(), tmp_path / "events.jsonl"
    argv = python_argv(
        "-m",
        "tests.servers.asgi_serve",
        "--server",
        server_name,
        "--port",
        str(port),
        "--grace",
        "1",
    )
    env = {"MATRIX_EVENTS": str(events)}
    with running(argv, port, env=env, cwd=ROOT, log=tmp_path / "log") as proc:
        sock = http_get(port, "/shutdown", read=100)
        t0 = time.monotonic()
        stop(proc, timeout=15)
        elapsed = time.monotonic() - t0
        sock.close()
    assert proc.returncode == 0, (tmp_path / "log").read_text()
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert recorded == [{"producer": f"{APP}.shutdown", "reason": "deadline_exceeded"}]
    assert elapsed < 10, "the server should have cancelled the stream after its 1 s grace"
