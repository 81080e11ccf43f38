"""The seed's cascade, reproduced against a real loopback server, and fixed by errclass fanout.

A client fetches subtrees A and B in parallel. The server streams half of A,
waits until B has failed (B answers 500), gives a cancelling client a moment
to hang up, then sends the rest of A. Its producers are instrumented with
errclass and it serves its own /metrics.

With ``asyncio.TaskGroup`` B's failure cancels A: A's stream is cut and the
server records ``client_gone`` for A, work it had already paid for. With
``errclass fanout`` A completes and is stored, the server records ``ok`` for
A, and the call still fails with B's error. The same test body runs both, so
it fails if the fan-out is replaced by a TaskGroup.

The server is this very file, run as ``python -m tests.test_fanout_cascade PORT``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

import pytest

import errclass

HALF = b"x" * 64 * 1024
GRACE = 2.0  # how long A waits after B failed for a cancelling client to hang up
A, B = "A", "B"


# The server


class _Gates:
    def __init__(self) -> None:
        self.a_half_sent = asyncio.Event()
        self.b_failed = asyncio.Event()


_gates: dict[str, _Gates] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI: /subtree/{run}/{A|B} and /metrics."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"].strip("/").split("/")
    if path == ["metrics"]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        await _respond(send, 200, generate_latest(), CONTENT_TYPE_LATEST)
    elif len(path) == 3 and path[0] == "subtree" and path[2] in (A, B):
        gates = _gates.setdefault(path[1], _Gates())
        if path[2] == A:
            await _serve_a(path[1], gates, receive, send)
        else:
            await _serve_b(path[1], gates, send)
    else:
        await _respond(send, 404, b"not found")


async def _respond(send: Any, status: int, body: bytes, ctype: str = "text/plain") -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serve_a(run: str, gates: _Gates, receive: Any, send: Any) -> None:
    """The producer learns of a disconnect as a cancellation at its own await,
    as under Starlette: a watcher on the ASGI ``http.disconnect`` cancels it."""
    body = asyncio.create_task(_produce_a(run, gates, send))

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        body.cancel()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait([body])
    finally:
        watcher.cancel()


async def _produce_a(run: str, gates: _Gates, send: Any) -> None:
    async with errclass.track(name=f"{run}:{A}"):
        headers = [(b"content-length", str(2 * len(HALF)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HALF, "more_body": True})
        gates.a_half_sent.set()
        # Not asyncio.wait_for: on 3.11 it loses a cancellation that arrives
        # just as the awaited event is set, and the cut would go unseen.
        async with asyncio.timeout(20):
            await gates.b_failed.wait()
        await asyncio.sleep(GRACE)
        await send({"type": "http.response.body", "body": HALF})


async def _serve_b(run: str, gates: _Gates, send: Any) -> None:
    async with asyncio.timeout(20):
        await gates.a_half_sent.wait()  # A is mid-stream when B fails
    try:
        with errclass.track(name=f"{run}:{B}"):
            raise OSError(5, "subtree store failed")
    except OSError as e:
        await _respond(send, 500, str(e).encode())
    gates.b_failed.set()


# The client


async def fetch(client: Any, run: str, subtree: str, stored: dict[str, bytes]) -> None:
    """A subtree_data fetch: stream the body, then store it."""
    async with client.stream("GET", f"/subtree/{run}/{subtree}") as resp:
        resp.raise_for_status()
        data = b"".join([chunk async for chunk in resp.aiter_bytes()])
    stored[subtree] = data


async def with_taskgroup(children: list[Callable[[], Awaitable[None]]]) -> None:
    async with asyncio.TaskGroup() as tg:
        for child in children:
            tg.create_task(child())


def with_fanout(sink: list[errclass.Event]) -> Callable[[Any], Awaitable[Any]]:
    from errclass._fanout import fanout

    return partial(fanout, timeout=15, name="subtree_data", sinks=[sink.append], logger=None)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from tests.support import ROOT, free_port, python_argv, running

    port = free_port()
    argv = python_argv("-m", "tests.test_fanout_cascade", str(port))
    with running(argv, port, cwd=ROOT):
        yield f"http://127.0.0.1:{port}"


def server_outcomes(url: str, run: str, subtree: str) -> dict[str, float]:
    """The server's counts for one subtree, nonzero reasons only, once it recorded one."""
    from tests.support import sample, scrape

    deadline = time.monotonic() + 15
    while True:
        samples = scrape(f"{url}/metrics")
        counts = {
            r.value: sample(
                samples, "errclass_outcomes_total", producer=f"{run}:{subtree}", reason=r.value
            )
            for r in errclass.Reason
        }
        if any(counts.values()) or time.monotonic() > deadline:
            return {k: v for k, v in counts.items() if v}
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("runner", "a_on_server", "a_stored"),
    [("fanout", "ok", True), ("taskgroup", "client_gone", False)],
)
async def test_sibling_failure_and_the_in_flight_stream(
    server: str, runner: str, a_on_server: str, a_stored: bool
) -> None:
    import httpx

    run = uuid.uuid4().hex[:12]
    stored: dict[str, bytes] = {}
    client_events: list[errclass.Event] = []
    run_all = with_fanout(client_events) if runner == "fanout" else with_taskgroup
    async with httpx.AsyncClient(base_url=server, timeout=15) as client:
        children = [partial(fetch, client, run, s, stored) for s in (A, B)]
        with pytest.raises(ExceptionGroup) as info:
            await run_all(children)

    # Either way the call fails with B's error, and only B's.
    [err] = info.value.exceptions
    assert isinstance(err, httpx.HTTPStatusError)
    assert err.response.status_code == 500
    assert err.request.url.path.endswith(f"/{B}")
    assert server_outcomes(server, run, B) == {"write_failed": 1}

    # What differs: A's stream, on both ends.
    assert server_outcomes(server, run, A) == {a_on_server: 1}
    assert (stored.get(A) == 2 * HALF) is a_stored
    if runner == "fanout":
        by_child = sorted((e.exception is err, e.reason.value) for e in client_events)
        b_reason = errclass.classify(err, role="consumer").reason.value
        assert by_child == sorted([(False, "ok"), (True, b_reason)])


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="on")
