"""Overhead of errclass.fanout against asyncio.gather for 10,000 trivial children.

Run: ``python bench/bench_fanout.py`` (or ``make bench``). Target: at most 1.3x.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from errclass._fanout import fanout

CHILDREN = 10_000
ROUNDS = 7
TARGET = 1.3


async def _trivial(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def _gather() -> None:
    await asyncio.gather(*(_trivial(i) for i in range(CHILDREN)))


def _fanout(limit: int, **kwargs: object) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await fanout(
            (_trivial(i) for i in range(CHILDREN)),
            timeout=60,
            limit=limit,
            name="bench",
            **kwargs,  # type: ignore[arg-type]
        )

    return run


def _measure(variants: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, float]:
    """Best wall time of ROUNDS runs per variant, interleaved so that noise from
    other processes hits every variant alike; each run on a fresh event loop."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(ROUNDS):
        for label, make in variants.items():
            t0 = time.perf_counter()
            asyncio.run(make())  # type: ignore[arg-type]
            best[label] = min(best[label], time.perf_counter() - t0)
    return best


def main() -> None:
    base = "asyncio.gather (baseline)"
    times = _measure(
        {
            base: _gather,
            "fanout, limit=8 (default), default sinks": _fanout(8),
            "fanout, limit=8, sinks=(), logger=None": _fanout(8, sinks=(), logger=None),
            f"fanout, limit={CHILDREN:,}, default sinks": _fanout(CHILDREN),
        }
    )
    print(f"### errclass.fanout vs asyncio.gather ({CHILDREN:,} trivial children)\n")
    print(f"Best of {ROUNDS} interleaved runs. Target: at most {TARGET}x.\n")
    print("| variant | best ms | ratio |")
    print("|---|---:|---:|")
    for label, t in times.items():
        print(f"| {label} | {t * 1e3:.1f} | {t / times[base]:.2f}x |")


if __name__ == "__main__":
    main()
