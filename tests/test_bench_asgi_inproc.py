"""bench/bench_asgi_inproc.py compares like with like: on uvicorn's own protocol every
application writes the same stream, and the instrumented one records each request.
(No timing here: the bench measures, this only checks what it measures.)"""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType

import pytest

import errclass.testing
from tests.support import ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = str(ROOT / "bench")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("bench_asgi_inproc")


@pytest.mark.parametrize("framework", ["bare", "starlette", "fastapi"])
def test_every_app_writes_the_same_stream_and_errclass_records_each_request(
    bench: ModuleType, framework: str
) -> None:
    async def serve(instrumented: bool) -> int:
        loop = asyncio.get_running_loop()
        conn = bench.Connection(bench.application(framework, 1024, instrumented), loop)
        try:
            await conn.requests(3)
        finally:
            conn.close()
        written: int = conn.transport.written
        return written

    plain = asyncio.run(serve(False))
    with errclass.testing.capture_outcomes() as events:
        instrumented = asyncio.run(serve(True))
    assert plain == instrumented
    assert plain > 3 * bench.CHUNKS * 1024
    assert [e.reason for e in events] == ["ok"] * 3


def test_a_worker_process_serves_the_rounds_it_is_asked_for(bench: ModuleType) -> None:
    """Each app runs in worker processes of its own (one shared process let the
    instrumented app slow the uninstrumented ones): a worker answers each round
    with its CPU seconds and exits cleanly when the bench is done with it."""
    worker = bench.Worker("bare", 1024, True)
    try:
        seconds = [worker.requests(5) for _ in range(2)]
    finally:
        worker.close()
    assert all(0 < s < 5 for s in seconds), seconds
    assert worker.process.returncode == 0
