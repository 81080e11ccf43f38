"""bench/bench_asgi.py compares like with like: every endpoint of its servers sends the
same response, and every instrumentation really records. (No timing here: the bench
measures, this only checks what it measures.)"""

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
        seen = bench.served(port, paths)
        check_bursts(bench, port, proc.pid, paths)  # the bursts the bench times
        stats = bench.recorded(port)
    finally:
        bench._load.stop(proc)
    status, headers, body = seen["/plain"]
    assert (status, headers["content-type"]) == (200, "application/octet-stream")
    assert body == b"x" * 1024 * bench.CHUNKS
    assert seen == dict.fromkeys(paths, seen["/plain"])
    bench.check(stats, paths, 2 + 3 * bench.CONCURRENCY)  # each one recorded every request
    if "/otel" in paths:
        assert stats["otel"] == 2 + 3 * bench.CONCURRENCY


def test_a_burst_fails_on_a_response_unlike_the_first(bench: ModuleType) -> None:
    """The raw reads do check: a response that does not start (status line) or end
    (last chunk) as the one the connection parsed first fails the burst."""
    proc, port = bench.start("uvicorn", "starlette", 1024)
    try:
        conn = bench.Connection(port)
        try:
            assert conn.get("/plain")[0] == 200
            conn.get_known("/plain")
            size, head, tail = conn.known
            conn.known = (size, head.replace(b"200", b"201"), tail)
            with pytest.raises(RuntimeError, match="not the response read before"):
                conn.get_known("/plain")
            conn.known = (size, head, b"1" + tail[1:])
            with pytest.raises(RuntimeError, match="not the response read before"):
                conn.get_known("/plain")
        finally:
            conn.close()
    finally:
        bench._load.stop(proc)


def test_the_load_generator_reads_the_servers_cpu_clock(bench: ModuleType) -> None:
    """_load.cpu_clock() reads another process's CPU time, and only its own."""
    import subprocess

    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    proc = subprocess.Popen([sys.executable, "-c", spin + "time.sleep(30)"])
    try:
        clock = bench._load.cpu_clock(proc.pid)
        while clock() < 0.3:  # the child spins 0.3 CPU-s, then sleeps
            assert proc.poll() is None
        first = clock()
        assert 0.3 <= first < 1.0 and clock() - first < 0.05  # asleep: no more CPU time
    finally:
        proc.kill()
        proc.wait()
