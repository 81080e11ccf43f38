"""What every framework app of the framework matrix shares (tests/test_frameworks.py).

Each framework module (``fw_<framework>.py``) serves the same routes, one
producer per route, so that the middleware records each under its own name:

* ``/complete``: 5 chunks of 100 bytes, 5 ms apart;
* ``/fin``, ``/rst``, ``/headers``: 1000 chunks of 1000 bytes, 20 ms apart (the
  client leaves mid-stream, or right after the headers);
* ``/devfull``: each chunk also written to /dev/full (ENOSPC on the third);
* ``/deadline``: a producer past its 0.3 s request deadline (async:
  ``errclass.deadline()``; sync: it raises ``TimeoutError`` itself);
* ``/load``: 40 chunks of 100 bytes, 10 ms apart (50 clients at once);
* ``/fast``: 256 chunks of 64 KiB, never sleeping (a body far larger than the
  socket buffers);
* ``/tracked``: a sync generator under ``errclass.track()`` (item 3).

``fw_started_total{route}`` counts the producers that began; ``/metrics`` is
served outside errclass (``metrics_routes.with_metrics_asgi``/``with_metrics_wsgi``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import prometheus_client

import errclass

STARTED = prometheus_client.Counter("fw_started", "Producers the framework app began.", ["route"])
DEADLINE = 0.3
ROUTES = ("complete", "fin", "rst", "headers", "devfull", "deadline", "load", "fast", "mid", "slow")
# route -> (chunks, size, delay)
SHAPES: dict[str, tuple[int, int, float]] = {
    "complete": (5, 100, 0.005),
    "fin": (150, 1000, 0.02),  # 3 s: long enough to leave in the middle
    "rst": (150, 1000, 0.02),
    "headers": (150, 1000, 0.02),
    "load": (40, 100, 0.01),
    "fast": (256, 65536, 0.0),
    "deadline": (100_000, 100, 0.02),
    "devfull": (100, 100, 0.005),
    "tracked": (1000, 1000, 0.02),
    "mid": (2000, 1000, 0.0),  # 2 MB at once: about what loopback buffers hold
    "slow": (100, 1000, 0.02),  # 2 s
}


def body(route: str) -> Iterator[bytes]:
    """The sync producer of *route*."""
    STARTED.labels(route).inc()
    n, size, delay = SHAPES[route]
    chunk = b"x" * size
    until = time.monotonic() + DEADLINE
    with open("/dev/full", "wb", buffering=0) as full:
        for i in range(n):
            if route == "devfull" and i >= 2:
                full.write(chunk)  # ENOSPC: our own fault, mid-stream
            if route == "deadline" and time.monotonic() > until:
                raise TimeoutError("past the request deadline")
            yield chunk
            if delay:
                time.sleep(delay)


async def abody(route: str) -> AsyncIterator[bytes]:
    """The async producer of *route*."""
    STARTED.labels(route).inc()
    n, size, delay = SHAPES[route]
    chunk = b"x" * size
    async with errclass.deadline(DEADLINE if route == "deadline" else None):
        with open("/dev/full", "wb", buffering=0) as full:
            for i in range(n):
                if route == "devfull" and i >= 2:
                    full.write(chunk)
                yield chunk
                if delay:
                    await asyncio.sleep(delay)


@errclass.track(name="tracked_body", logger=None)
def tracked_body() -> Iterator[bytes]:
    """Item 3: a tracked sync generator (Starlette iterates it in a thread pool)."""
    yield from body("tracked")
