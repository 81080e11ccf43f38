"""bench/bench_asgi.py compares like with like: every endpoint of its servers sends the
same response, and every instrumentation really records. (No timing here: the bench
measures, this only checks what it measures.)"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = str(ROOT / "bench")
    if path not in sys.path:  # the bench imports its sibling _load as a script does
        sys.path.insert(0, path)
    return importlib.import_module("bench_asgi")


@pytest.mark.parametrize(
    ("server", "framework"),
    [("uvicorn", "starlette"), ("uvicorn", "fastapi"), ("hypercorn", "starlette")],
)
def test_every_endpoint_serves_the_same_stream_and_is_recorded(
    bench: ModuleType, server: str, framework: str
) -> None:
    paths = bench.HYPERCORN if server == "hypercorn" else bench.PEERS
    proc, port = bench.start(server, framework, 1024)
    try:
        seen = {}
        for path in paths:
            conn = bench.Connection(port)
            try:
                for _ in range(2):  # twice on one keep-alive connection
                    status, headers, body = conn.get(path)
                    headers.pop("date", None)
                    seen[path] = (status, headers, body)
            finally:
                conn.close()
        stats = bench.recorded(port)
    finally:
        bench._load.stop(proc)
    status, headers, body = seen["/plain"]
    assert (status, headers["content-type"]) == (200, "application/octet-stream")
    assert body == b"x" * 1024 * bench.CHUNKS
    assert seen == dict.fromkeys(paths, seen["/plain"])
    bench.check(stats, paths, 2)  # raises unless each one recorded both requests
    if "/otel" in paths:
        assert stats["otel"] == 2
