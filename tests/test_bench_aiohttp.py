"""bench/bench_aiohttp.py compares like with like: its four endpoints send the same
response, and errclass records each request to its own endpoint and no other. (No
timing here: the bench measures, this only checks what it measures.)"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from tests.support import ROOT, check_bursts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = str(ROOT / "bench")
    if path not in sys.path:  # the bench imports its siblings as a script does
        sys.path.insert(0, path)
    return importlib.import_module("bench_aiohttp")


def test_every_endpoint_serves_the_same_stream_and_only_errclass_records(
    bench: ModuleType,
) -> None:
    asgi = bench.bench_asgi
    proc, port = bench.start(1024)
    try:
        seen = asgi.served(port, bench.PATHS)
        assert bench.recorded(port) == 2  # the errclass endpoint's two, no other
        check_bursts(asgi, port, proc.pid, bench.PATHS)  # the bursts the bench times
        after = bench.recorded(port)
    finally:
        asgi._load.stop(proc)
    status, headers, body = seen["/plain/s"]
    assert (status, headers["content-type"]) == (200, "application/octet-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"x" * 1024 * asgi.CHUNKS
    assert seen == dict.fromkeys(bench.PATHS, seen["/plain/s"])
    assert after == 2 + 3 * asgi.CONCURRENCY


def test_the_in_process_rounds_run_the_middleware(bench: ModuleType) -> None:
    from prometheus_client import REGISTRY

    def ok() -> float:
        labels = {"producer": "bench_aiohttp.in_process.<locals>.handler", "reason": "ok"}
        return REGISTRY.get_sample_value("errclass_outcomes_total", labels) or 0.0

    before = ok()
    bare, instrumented, again = bench.in_process(rounds=2, n=5)
    assert ok() - before == 10  # each of the rounds' requests recorded once
    assert min(bare, instrumented, again) > 0
