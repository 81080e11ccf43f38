"""Core overhead, as ratios against baselines measured in the same run.

Per call: ``@errclass.track(counter)`` on a trivial function vs a hand-written
``try/except`` with a pre-bound child ``.inc()`` (the floor) and vs
prometheus_client's ``count_exceptions``. Per item: wrapped generators vs a bare
re-yield. ``classify()`` of a cached type and of a 6-deep chain.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import timeit
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from prometheus_client import CollectorRegistry, Counter

import errclass

N_CALLS = 100_000
N_ITEMS = 200_000
N_CHAINS = 200  # classify() calls per round: ~0.2 ms, within one scheduler slice
REPEAT = 7


def ns_per_op(fn: Callable[[], object], number: int) -> float:
    """Median of REPEAT runs, in ns per operation."""
    runs = timeit.repeat(fn, number=1, repeat=REPEAT) if number == 1 else None
    if runs is None:
        runs = timeit.repeat(fn, number=number, repeat=REPEAT)
        return statistics.median(runs) / number * 1e9
    return statistics.median(runs) * 1e9


SLICES = 10  # interleaved() runs each row in this many short rounds per REPEAT


def interleaved(fns: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """ns per operation of each of *fns* (one call runs *n*), the rows taking turns
    in SLICES * REPEAT short rounds: the fastest round of each (timeit's advice:
    slower ones measure the other processes on this shared machine, and a burst
    of them hits a row and its baseline alike)."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(SLICES * REPEAT):
        for name, fn in fns.items():
            runs[name].append(timeit.timeit(fn, number=1) / n * 1e9)
    return {name: min(r) for name, r in runs.items()}


def per_call() -> list[tuple[str, float, float | None, str]]:
    registry = CollectorRegistry()
    counter = Counter("bench_outcomes", "x", ("reason",), registry=registry)
    ok_child, err_child = counter.labels("ok"), counter.labels("write_failed")
    exc_counter = Counter("bench_exc", "x", registry=registry)

    def bare() -> int:
        return 1

    def floor() -> int:
        try:
            r = bare()
        except BaseException:
            err_child.inc()
            raise
        ok_child.inc()
        return r

    counted = exc_counter.count_exceptions()(bare)
    tracked = errclass.track(counter)(bare)

    def bare_fail() -> None:
        raise BrokenPipeError  # a fresh one each time: a reused one grows its traceback

    def floor_fail() -> None:
        try:
            bare_fail()
        except BaseException:
            err_child.inc()
            raise
        ok_child.inc()

    tracked_fail = errclass.track(counter)(bare_fail)

    def loop(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(N_CALLS // SLICES):
                try:
                    fn()
                except BrokenPipeError:
                    pass

        return run

    fns = {
        "bare": bare,
        "floor": floor,
        "count_exceptions": counted,
        "track": tracked,
        "bare_fail": bare_fail,
        "floor_fail": floor_fail,
        "track_fail": tracked_fail,
    }
    t = interleaved({name: loop(fn) for name, fn in fns.items()}, N_CALLS // SLICES)
    return [
        ("bare call of a trivial function", t["bare"], None, ""),
        ("hand-written try/except + child.inc() (floor)", t["floor"], 1.0, ""),
        (
            "prometheus_client count_exceptions()",
            t["count_exceptions"],
            t["count_exceptions"] / t["floor"],
            "",
        ),
        ("@errclass.track(counter), success", t["track"], t["track"] / t["floor"], "<= 1.2"),
        ("hand-written floor, BrokenPipeError", t["floor_fail"], 1.0, ""),
        (
            "@errclass.track(counter), BrokenPipeError",
            t["track_fail"],
            t["track_fail"] / t["floor_fail"],
            "<= 1.5",
        ),
    ]


def per_item() -> list[tuple[str, float, float | None, str]]:
    registry = CollectorRegistry()
    counter = Counter("bench_items", "x", ("reason",), registry=registry)

    def source() -> Generator[int, None, None]:
        yield from range(N_ITEMS // SLICES)

    def reyield() -> Generator[int, None, None]:
        yield from source()

    wrapped = errclass.track(counter)(source)

    async def asource() -> AsyncGenerator[int, None]:
        for i in range(N_ITEMS // SLICES):
            yield i

    async def areyield() -> AsyncGenerator[int, None]:
        async for x in asource():
            yield x

    awrapped = errclass.track(counter)(asource)

    def drain(make: Callable[[], Generator[int, None, None]]) -> Callable[[], None]:
        def go() -> None:
            for _ in make():
                pass

        return go

    def adrain(make: Callable[[], AsyncGenerator[int, None]]) -> Callable[[], None]:
        async def go() -> None:
            async for _ in make():
                pass

        return lambda: asyncio.run(go())

    fns: dict[str, Callable[[], object]] = {
        "gen": drain(source),
        "reyield": drain(reyield),
        "wrapped": drain(wrapped),
        "agen": adrain(asource),
        "areyield": adrain(areyield),
        "awrapped": adrain(awrapped),
    }
    t = interleaved(fns, N_ITEMS // SLICES)
    return [
        ("sync generator, bare (per item)", t["gen"], None, ""),
        ("sync: bare `yield from` re-yield (baseline)", t["reyield"], 1.0, ""),
        ("sync: @errclass.track generator", t["wrapped"], t["wrapped"] / t["reyield"], "<= 1.2"),
        ("async generator, bare (per item)", t["agen"], None, ""),
        ("async: bare `async for` re-yield (baseline)", t["areyield"], 1.0, ""),
        (
            "async: @errclass.track async generator (full forwarding)",
            t["awrapped"],
            t["awrapped"] / t["areyield"],
            "<= 1.2",
        ),
    ]


def _mixed_chain() -> BaseException:
    exc: BaseException = ConnectionResetError(104, "reset")
    for i in range(5):
        outer = RuntimeError(i) if i % 2 else ValueError(i)
        outer.__context__ = exc
        exc = outer
    return exc


def _httpx_chain() -> BaseException:
    import httpcore
    import httpx

    reset = ConnectionResetError(104, "reset")
    core = httpcore.ReadError("reset")
    core.__cause__ = core.__context__ = reset
    top = httpx.ReadError("reset")
    top.__cause__ = top.__context__ = core
    return top


def _per_call(classify: Callable[[BaseException], object], excs: list[BaseException]) -> float:
    """ns per classify() over *excs*: a plain loop, so little but the call is timed."""
    start = time.perf_counter_ns()
    for exc in excs:
        classify(exc)
    return (time.perf_counter_ns() - start) / len(excs)


def classification() -> list[tuple[str, float, float | None, str]]:
    """A cached class vs two chains of fresh instances (made outside the timing), by
    turns in SLICES * REPEAT short rounds: the fastest round of each, as
    interleaved() (which cannot give each round fresh instances)."""
    policy = errclass.Policy()
    pipe = BrokenPipeError()
    makers: dict[str, Callable[[], BaseException]] = {
        "cached": lambda: pipe,  # the same instance: the cached-class path
        "mixed": _mixed_chain,
        "httpx": _httpx_chain,
    }
    runs: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(SLICES * REPEAT):
        for name, make in makers.items():
            runs[name].append(_per_call(policy.classify, [make() for _ in range(N_CHAINS)]))
    cached, mixed, chained = (min(runs[name]) for name in makers)
    return [
        ("classify(), cached type (BrokenPipeError)", cached, None, ""),
        ("classify(), 6-deep mixed __context__ chain, fresh", mixed, mixed / cached, "<= 1 us"),
        (
            "classify(), httpx.ReadError <- httpcore.ReadError <- ConnectionResetError, fresh",
            chained,
            chained / cached,
            "<= 1 us",
        ),
    ]


def coroutine() -> list[tuple[str, float, float | None, str]]:
    registry = CollectorRegistry()
    counter = Counter("bench_coro", "x", ("reason",), registry=registry)
    err_child = counter.labels("client_gone")

    async def bare() -> None:
        raise asyncio.CancelledError

    async def floor() -> None:
        try:
            await bare()
        except BaseException:
            err_child.inc()
            raise

    tracked = errclass.track(counter)(bare)
    # The same wrapper under a policy whose cancellation rule is decided by the
    # class alone (no deadline check): what the wrapper costs without the rule.
    static = errclass.Policy(
        rules=[errclass.Rule(errclass.Reason.CLIENT_GONE, types=asyncio.CancelledError)]
    )
    tracked_static = errclass.track(counter, policy=static)(bare)

    def drive(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(N_CALLS // SLICES):
                coro = fn()
                try:
                    coro.send(None)  # no loop: the same work for all rows
                except asyncio.CancelledError:
                    pass

        return run

    fns = {"floor": floor, "track": tracked, "static": tracked_static}
    t = interleaved({name: drive(fn) for name, fn in fns.items()}, N_CALLS // SLICES)
    return [
        ("hand-written floor, CancelledError in a coroutine", t["floor"], 1.0, ""),
        (
            "@errclass.track(counter) coroutine, CancelledError",
            t["track"],
            t["track"] / t["floor"],
            "<= 1.5",
        ),
        (
            "the same, a policy with a class-only cancellation rule (no deadline check)",
            t["static"],
            t["static"] / t["floor"],
            "",
        ),
    ]


def main() -> None:
    print("| measurement | ns/op | ratio to baseline | target |")
    print("|---|---:|---:|---|")
    for name, ns, ratio, target in per_call() + coroutine() + per_item() + classification():
        r = "" if ratio is None else f"{ratio:.2f}x"
        print(f"| {name} | {ns:,.0f} | {r} | {target} |")


if __name__ == "__main__":
    main()
