"""Overhead of errclass fanout against asyncio.gather for 10,000 trivial children.

Run: ``python bench/bench_fanout.py`` (or ``make bench``). Target: at most 1.3x.
Both sides run one task per child; the fan-out also records each outcome
(default sinks: a Prometheus counter and the ``errclass`` logger) and holds a
per-child timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from errclass._fanout import fanout

CHILDREN = 10_000
ROUNDS = 7
TARGET = 1.3

Child = Callable[[int], Awaitable[int]]
Variant = Callable[[], Awaitable[Any]]


async def _yields_once(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def _returns(i: int) -> int:
    return i


def _gather(child: Child) -> Variant:
    return lambda: asyncio.gather(*(child(i) for i in range(CHILDREN)))


def _fanout(child: Child, limit: int, **options: Any) -> Variant:
    def run() -> Awaitable[list[int]]:
        children = (child(i) for i in range(CHILDREN))
        return fanout(children, timeout=60, limit=limit, name="bench", **options)

    return run


def _measure(variants: dict[str, Variant]) -> dict[str, float]:
    """Best wall time of ROUNDS runs per variant, interleaved so that noise from
    other processes hits every variant alike; each run on a fresh event loop."""
    best = dict.fromkeys(variants, float("inf"))

    async def call(make: Variant) -> None:
        await make()

    for _ in range(ROUNDS):
        for label, make in variants.items():
            t0 = time.perf_counter()
            asyncio.run(call(make))
            best[label] = min(best[label], time.perf_counter() - t0)
    return best


def main() -> None:
    print(f"### errclass fanout vs asyncio.gather ({CHILDREN:,} trivial children)\n")
    print(f"Best of {ROUNDS} interleaved runs, each on a fresh loop. Target: at most {TARGET}x.\n")
    print("| child | variant | best ms | ratio |")
    print("|---|---|---:|---:|")
    for kind, child in (("yields once", _yields_once), ("returns at once", _returns)):
        base = "asyncio.gather (baseline)"
        times = _measure(
            {
                base: _gather(child),
                "fanout, limit=8 (default), default sinks": _fanout(child, 8),
                "fanout, limit=8, no sinks": _fanout(child, 8, sinks=(), logger=None),
                f"fanout, limit={CHILDREN:,}, default sinks": _fanout(child, CHILDREN),
            }
        )
        for label, t in times.items():
            print(f"| {kind} | {label} | {t * 1e3:.1f} | {t / times[base]:.2f}x |")


if __name__ == "__main__":
    main()
