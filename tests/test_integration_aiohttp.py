"""The aiohttp matrix: a real aiohttp server on loopback, with ``handler_cancellation``
off (the default: the write raises ``ClientConnectionResetError``) and on (the
handler is cancelled), counts scraped from the server's ``/metrics``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import errclass
from errclass.integrations.aiohttp import middleware, setup
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

STREAMS = 3
APP = "tests.servers.aiohttp_app"
DEADLINE = 0.5
STACKS = ["aiohttp", "aiohttp-handler-cancellation"]


def server_argv(stack: str, port: int) -> list[str]:
    # -c, not -m: handlers keep their import name (tests.servers.aiohttp_app.*).
    flag = ", '--handler-cancellation'" if stack.endswith("cancellation") else ""
    code = (
        "import sys; from tests.servers.aiohttp_app import main; "
        f"sys.argv[1:] = ['--port', '{port}'{flag}]; main()"
    )
    return python_argv("-c", code)


@pytest.fixture(scope="module", params=STACKS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    stack, port = request.param, free_port()
    log = tmp_path_factory.mktemp(stack) / "server.log"
    env = {"MATRIX_DEADLINE": str(DEADLINE)}
    with running(server_argv(stack, port), port, env=env, cwd=ROOT, log=log):
        yield stack, port


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with resetting_upstream() as port:
        yield port


def stall(port: int, path: str) -> None:
    stall_reading(port, path, DEADLINE + 1.0)


Client = Callable[[int, str], None]

# scenario -> (path, client, handler, expected reason); handler = started label
SCENARIOS: dict[str, tuple[str, Client, str, str]] = {
    "completes": ("/completes", read_stream, "completes", "ok"),
    "fin_mid_stream": ("/fin", leave_after(fin_close, 3000), "fin", "client_gone"),
    "rst_mid_stream": ("/rst", leave_after(rst_close, 3000), "rst", "client_gone"),
    "fast_producer_client_leaves": (
        "/fast", leave_after(fin_close, 200_000), "fast", "client_gone",
    ),
    "handler_swallows_the_reset": (
        "/swallow", leave_after(fin_close, 3000), "swallow", "client_gone",
    ),
    "client_stalls_past_deadline": ("/stalled", stall, "stalled", "deadline_exceeded"),
    "write_fault_dev_full": ("/devfull", read_stream, "devfull", "write_failed"),
    "upstream_resets": ("/upstream?port={upstream}", read_stream, "upstream", "write_failed"),
}  # fmt: skip


async def test_a_raised_http_response_is_ok_and_an_error_is_not() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    events: list[errclass.Event] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/elsewhere")

    async def broken(request: web.Request) -> web.StreamResponse:
        raise KeyError("bug")

    app = web.Application()
    setup(app, events.append, logger=None)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/redirect", allow_redirects=False)).status == 302
        assert (await client.get("/broken")).status == 500
    assert [(e.producer.rsplit(".", 1)[-1], e.reason) for e in events] == [
        ("redirect", "ok"),
        ("broken", "write_failed"),
    ]


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match=r"takes an aiohttp\.web\.Application"):
        setup(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name= must be a string"):
        middleware(name=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shutdown= must be one of"):
        middleware(shutdown="gone")


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matrix(server: tuple[str, int], upstream: int, scenario: str) -> None:
    stack, port = server
    path, client, handler, expected = SCENARIOS[scenario]
    path = path.format(upstream=upstream)
    deltas, started = counted_streams(
        f"http://127.0.0.1:{port}/metrics",
        f"{APP}.{handler}",
        handler,
        STREAMS,
        lambda: client(port, path),
    )
    assert started == STREAMS, f"{stack}: {started} streams started"
    assert deltas == {expected: STREAMS}, f"{stack} {scenario}: {deltas}"


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_server_shutdown_is_not_client_gone(stack: str, tmp_path: Path) -> None:
    """aiohttp cancels a handler still running when ``shutdown_timeout`` (1 s)
    runs out, with the connection still open: the server's deadline, not a
    client leaving."""
    port, events = free_port(), tmp_path / "events.jsonl"
    env = {"MATRIX_EVENTS": str(events)}
    with running(server_argv(stack, port), port, env=env, cwd=ROOT, log=tmp_path / "log") as proc:
        sock: socket.socket = http_get(port, "/shutdown", read=100)
        t0 = time.monotonic()
        stop(proc, timeout=15)
        elapsed = time.monotonic() - t0
        sock.close()
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    assert recorded == [{"producer": f"{APP}.shutdown", "reason": "deadline_exceeded"}]
    assert elapsed < 10, "the server should have cancelled the stream after its 1 s grace"
