"""gunicorn settings for the matrix: prometheus_client multiprocess mode.

Counters live in files under PROMETHEUS_MULTIPROC_DIR, so counts survive a
worker killed by its timeout; a dead worker's live gauges are dropped here.
"""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
