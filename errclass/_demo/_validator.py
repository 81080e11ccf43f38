"""The block validator: fetches each block's subtrees from the peer in parallel.

Phases 1 and 2 use ``asyncio.TaskGroup``, which cancels every sibling when one
fetch fails, as Go's ``errgroup.WithContext`` did in the seed. Phase 3 uses
``errclass.fanout``: a failing fetch never cancels the others. Its own counters
(scraped by Prometheus) say what happened to each fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import secrets
import time
from typing import Any

import errclass

BATCH = 8  # subtrees per block, fetched in parallel
WORKERS = 6  # blocks validated at once
BLOCK_EVERY = 0.5  # seconds: each worker starts a block at most this often
FETCH_TIMEOUT = 10.0
RESULTS = ("ok", "failed", "cut_by_sibling")


class Validator:
    def __init__(self, base_url: str) -> None:
        from prometheus_client import Counter

        self.base_url = base_url
        # In the default registry, beside errclass_fetch_outcomes_total from fanout().
        self.fetches = Counter(
            "block_validator_fetches",
            "Subtree fetches by what happened to them: cut_by_sibling = cancelled mid-stream "
            "because a sibling in the same block failed",
            ["phase", "result"],
        )
        self.blocks = Counter("block_validator_blocks", "Blocks validated", ["phase", "result"])
        self.live: dict[str, int] = {"fetches": 0, "cut": 0}  # for the progress line only
        self._ids = itertools.count()

    def prepare(self, phase: str) -> None:
        for result in RESULTS:
            self.fetches.labels(phase=phase, result=result)
        for result in ("ok", "failed"):
            self.blocks.labels(phase=phase, result=result)

    async def fetch(self, client: Any, url: str, phase: str) -> int:
        """One subtree body; returns its size."""
        self.live["fetches"] += 1
        try:
            got = 0
            async with client.stream("GET", url) as r:
                r.raise_for_status()
                async for chunk in r.aiter_raw():
                    got += len(chunk)
        except asyncio.CancelledError:
            self.fetches.labels(phase=phase, result="cut_by_sibling").inc()
            self.live["cut"] += 1
            raise
        except Exception:
            self.fetches.labels(phase=phase, result="failed").inc()
            raise
        self.fetches.labels(phase=phase, result="ok").inc()
        return got

    def _urls(self, route: str) -> list[str]:
        block = next(self._ids)
        bad = secrets.randbelow(BATCH)
        return [
            f"{self.base_url}/{route}/subtree_data/"
            f"{'dead' if i == bad else 'beef'}{block:06d}{i:02d}{secrets.token_hex(4)}"
            for i in range(BATCH)
        ]

    async def block(self, client: Any, route: str, phase: str, use_fanout: bool) -> None:
        urls = self._urls(route)
        try:
            if use_fanout:
                children = [functools.partial(self.fetch, client, u, phase) for u in urls]
                await errclass.fanout(children, timeout=FETCH_TIMEOUT, name="block_validator")
            else:
                async with asyncio.TaskGroup() as tg:
                    for u in urls:
                        tg.create_task(self.fetch(client, u, phase))
        except Exception:  # the poisoned subtree: the block fails, the next one starts
            self.blocks.labels(phase=phase, result="failed").inc()
        else:
            self.blocks.labels(phase=phase, result="ok").inc()

    async def run(self, route: str, phase: str, use_fanout: bool, stop: asyncio.Event) -> None:
        """Validate blocks with WORKERS workers until *stop* is set; in-flight blocks finish."""
        import httpx

        self.prepare(phase)
        limits = httpx.Limits(max_connections=WORKERS * BATCH * 2, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=FETCH_TIMEOUT) as client:

            async def worker(offset: float) -> None:
                await asyncio.sleep(offset)
                while not stop.is_set():
                    started = time.monotonic()
                    await self.block(client, route, phase, use_fanout)
                    rest = BLOCK_EVERY - (time.monotonic() - started)
                    if rest > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), rest)

            async with asyncio.TaskGroup() as tg:
                for i in range(WORKERS):
                    tg.create_task(worker(i * BLOCK_EVERY / WORKERS))
