"""Overhead of errclass fanout against asyncio.gather for 10,000 trivial children,
and of fanout_sync against a ThreadPoolExecutor(50) for 1,000 children of 20 ms.

Run: ``python bench/bench_fanout.py`` (or ``make bench``). Targets: at most 1.3x
and 1.1x.
Both sides run one task per child; the fan-out also records each outcome
(default sinks: a Prometheus counter and the ``errclass`` logger) and holds a
per-child timeout.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from errclass._fanout import fanout, fanout_sync

CHILDREN = 10_000
ROUNDS = 7
TARGET = 1.3
THREAD_CHILDREN, THREAD_SLEEP, THREAD_LIMIT, THREAD_ROUNDS, THREAD_TARGET = 1_000, 0.02, 50, 5, 1.1

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
            gc.collect()  # every run starts from the same collector state (untimed)
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
    _threads()


def _threads() -> None:
    """fanout_sync against the executor it replaces, interleaved, best of THREAD_ROUNDS."""

    def child() -> None:
        time.sleep(THREAD_SLEEP)

    def executor() -> None:
        with ThreadPoolExecutor(THREAD_LIMIT) as pool:
            for f in [pool.submit(child) for _ in range(THREAD_CHILDREN)]:
                f.result()

    def errclass_sync() -> None:
        fanout_sync([child] * THREAD_CHILDREN, timeout=60, limit=THREAD_LIMIT, name="bench")

    variants = {
        "ThreadPoolExecutor(50) (baseline)": executor,
        "fanout_sync, limit=50": errclass_sync,
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(THREAD_ROUNDS):
        for label, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            best[label] = min(best[label], time.perf_counter() - t0)
    ideal = THREAD_CHILDREN / THREAD_LIMIT * THREAD_SLEEP
    print(
        f"\n### errclass fanout_sync vs ThreadPoolExecutor ({THREAD_CHILDREN:,} children of "
        f"{THREAD_SLEEP * 1e3:.0f} ms, limit {THREAD_LIMIT}; ideal {ideal * 1e3:.0f} ms)\n"
    )
    print(f"Best of {THREAD_ROUNDS} interleaved runs. Target: at most {THREAD_TARGET}x.\n")
    print("| variant | best ms | ratio |")
    print("|---|---:|---:|")
    base = best["ThreadPoolExecutor(50) (baseline)"]
    for label, t in best.items():
        print(f"| {label} | {t * 1e3:.1f} | {t / base:.2f}x |")


if __name__ == "__main__":
    main()
