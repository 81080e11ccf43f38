"""gunicorn with 4 workers in prometheus_client multiprocess mode: exact totals.

Each worker writes its counts to files under PROMETHEUS_MULTIPROC_DIR; the
``/metrics`` route (whichever worker serves it) aggregates them with
``MultiProcessCollector``. A SIGHUP replaces every worker mid-test (the
``child_exit`` hook marks the old ones dead): counts of dead workers must still
be in the totals, each stream exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ROOT,
    fin_close,
    free_port,
    http_get,
    outcomes,
    python_argv,
    running,
    wait_for_outcomes,
)

pytestmark = pytest.mark.slow

PRODUCER = "wsgi_matrix"


def _complete(port: int) -> None:
    resp = httpx.get(f"http://127.0.0.1:{port}/slow?n=5&delay=0.02&size=100", timeout=30)
    assert len(resp.content) == 500


def _leave(port: int) -> None:
    fin_close(http_get(port, "/slow?n=300&delay=0.02&size=100", read=100, timeout=30))


def _fault(port: int) -> None:
    try:
        httpx.get(f"http://127.0.0.1:{port}/devfull?n=10", timeout=30)
    except httpx.HTTPError:
        pass


def _batch(port: int, each: int) -> None:
    """*each* streams of every kind, all at once, from their own threads."""
    threads = [
        threading.Thread(target=fn, args=(port,))
        for fn in (_complete, _leave, _fault)
        for _ in range(each)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()


def _worker_files(prom: Path) -> set[str]:
    return {p.name for p in prom.glob("counter_*.db")}


def test_counts_aggregate_exactly_across_workers(tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    port = free_port()
    argv = python_argv(
        "-m", "gunicorn", "-k", "sync", "-w", "4", "--timeout", "30", "--graceful-timeout", "5",
        "-b", f"127.0.0.1:{port}", "-c", "tests/servers/wsgi_gunicorn_conf.py",
        "tests.servers.wsgi_app:app",
    )  # fmt: skip
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom), "PYTHONPATH": str(ROOT)}
    metrics = f"http://127.0.0.1:{port}/metrics"
    with running(argv, port, env=env, cwd=ROOT, log=tmp_path / "gunicorn.log") as master:
        before = outcomes(metrics, PRODUCER)
        assert sum(before.values()) == 0

        _batch(port, each=10)
        first = wait_for_outcomes(metrics, PRODUCER, before, 30)
        assert first == {"ok": 10, "client_gone": 10, "write_failed": 10}
        old_files = _worker_files(prom)
        assert len(old_files) >= 2, f"the streams should have spread over workers: {old_files}"

        os.kill(master.pid, signal.SIGHUP)  # replace every worker
        deadline = time.monotonic() + 20
        while not (_worker_files(prom) - old_files) and time.monotonic() < deadline:
            _complete(port)  # served by new workers once they are up
            time.sleep(0.2)
        extra = outcomes(metrics, PRODUCER)["ok"] - before["ok"] - 10

        _batch(port, each=10)
        total = wait_for_outcomes(metrics, PRODUCER, before, 60 + int(extra))
        assert total == {"ok": 20 + extra, "client_gone": 20, "write_failed": 20}
        assert _worker_files(prom) - old_files, "new workers must have counted too"
