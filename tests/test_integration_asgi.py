"""The ASGI matrix: real servers on loopback, real clients, counts scraped over HTTP.

One server process per stack (uvicorn h11, uvicorn httptools, hypercorn) serves
``tests/servers/asgi_app.py`` behind ``ErrclassMiddleware``; every scenario
drives a few streams and reads ``errclass_outcomes_total`` from the server's
``/metrics``: the expected reason once per stream, and the outcomes summing to
the streams started.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import (
    ROOT,
    counted_streams,
    fin_close,
    free_port,
    http_get,
    leave_after,
    python_argv,
    read_stream,
    resetting_upstream,
    rst_close,
    running,
    stall_reading,
    stop,
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


def stall(port: int, path: str) -> None:
    stall_reading(port, path, DEADLINE + 1.0)


# scenario -> (path, client, endpoint, started label, expected reason)
SCENARIOS: dict[str, tuple[str, Callable[[int, str], None], str, str, str]] = {
    "completes": ("/completes", read_stream, "completes", "completes", "ok"),
    "fin_mid_stream": ("/fin", leave_after(fin_close, 3000), "fin", "fin", "client_gone"),
    "rst_mid_stream": ("/rst", leave_after(rst_close, 3000), "rst", "rst", "client_gone"),
    "fast_producer_client_leaves": (
        "/fast", leave_after(fin_close, 200_000), "fast", "fast", "client_gone",
    ),
    "client_stalls_past_deadline": ("/stalled", stall, "Stalled", "stalled", "deadline_exceeded"),
    "write_fault_dev_full": ("/devfull", read_stream, "devfull", "devfull", "write_failed"),
    "upstream_resets": (
        "/upstream?port={upstream}", read_stream, "upstream", "upstream", "write_failed",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with resetting_upstream() as port:
        yield port


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matrix(server: tuple[str, int], upstream: int, scenario: str) -> None:
    stack, port = server
    path, client, endpoint, label, expected = SCENARIOS[scenario]
    path = path.format(upstream=upstream)
    deltas, started = counted_streams(
        f"http://127.0.0.1:{port}/metrics",
        f"{APP}.{endpoint}",
        label,
        STREAMS,
        lambda: client(port, path),
    )
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
