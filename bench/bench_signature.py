"""What a wrapper compiled with the function's own parameters saves over a generic one.

The same ``track()`` body behind ``*args, **kwargs`` (what errclass still uses
for callables whose parameters it cannot read, e.g. ``functools.partial``; before
issue 18 it was every wrapper's) vs
compiled with the function's parameters (every plain function), the rows
taking turns in the same run, on success and on a raise, for a function of no
parameters (bench_core's rows) and of three (two positional, one defaulted).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from bench_core import SLICES, interleaved
from prometheus_client import CollectorRegistry, Counter

import errclass
from errclass import _scope, _signature

N_CALLS = 100_000


def _generic(fn: Callable[..., Any], counter: Counter) -> Callable[..., Any]:
    """The very body track() compiles, behind ``*args, **kwargs``."""
    kind = "coro" if inspect.iscoroutinefunction(fn) else "sync"
    tracker = errclass.track(counter)._tracker(fn.__qualname__)
    cells = _scope._cells(tracker)
    variant = _signature._variant(kind, cells)
    make = _signature._factory(kind, _signature.GENERIC, _signature.PREFIX, variant)
    return make(fn, *(cells[name] for name in _signature.CELLS[kind]))  # type: ignore[no-any-return]


def _loop(call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(N_CALLS // SLICES):
            try:
                call()
            except BrokenPipeError:
                pass

    return run


def per_call() -> list[tuple[str, float, float | None, str]]:
    registry = CollectorRegistry()
    counter = Counter("bench_sig", "x", ("reason",), registry=registry)

    def none() -> int:
        return 1

    def three(a: int, b: int, c: int = 3) -> int:
        return a

    def none_fail() -> None:
        raise BrokenPipeError

    def three_fail(a: int, b: int, c: int = 3) -> None:
        raise BrokenPipeError

    rows = {
        "no parameters, success": (none, lambda f: f()),
        "no parameters, BrokenPipeError": (none_fail, lambda f: f()),
        "f(a, b, c=3) called f(1, 2), success": (three, lambda f: f(1, 2)),
        "f(a, b, c=3) called f(1, 2), BrokenPipeError": (three_fail, lambda f: f(1, 2)),
    }
    fns: dict[str, Callable[[], None]] = {}
    for name, (fn, call) in rows.items():
        compiled, generic = errclass.track(counter)(fn), _generic(fn, counter)
        fns[f"{name} compiled"] = _loop(functools.partial(call, compiled))
        fns[f"{name} generic"] = _loop(functools.partial(call, generic))
    t = interleaved(fns, N_CALLS // SLICES)
    out: list[tuple[str, float, float | None, str]] = []
    for name in rows:
        c, g = t[f"{name} compiled"], t[f"{name} generic"]
        out.append((f"{name}: generic `*args, **kwargs` wrapper", g, 1.0, ""))
        out.append((f"{name}: compiled wrapper (saves {g - c:,.0f} ns)", c, c / g, ""))
    return out


def coroutine() -> list[tuple[str, float, float | None, str]]:
    registry = CollectorRegistry()
    counter = Counter("bench_sig_coro", "x", ("reason",), registry=registry)

    async def cancelled(a: int, b: int = 2) -> None:
        raise asyncio.CancelledError

    compiled, generic = errclass.track(counter)(cancelled), _generic(cancelled, counter)

    def drive(fn: Callable[..., Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(N_CALLS // SLICES):
                coro = fn(1)
                try:
                    coro.send(None)
                except asyncio.CancelledError:
                    pass

        return run

    t = interleaved({"c": drive(compiled), "g": drive(generic)}, N_CALLS // SLICES)
    return [
        ("coroutine f(a, b=2) called f(1), CancelledError: generic wrapper", t["g"], 1.0, ""),
        (
            f"the same, compiled wrapper (saves {t['g'] - t['c']:,.0f} ns)",
            t["c"],
            t["c"] / t["g"],
            "",
        ),
    ]


def main() -> None:
    print("| measurement | ns/op | ratio to generic | target |")
    print("|---|---:|---:|---|")
    for name, ns, ratio, target in per_call() + coroutine():
        shown = "" if ratio is None else f"{ratio:.2f}x"
        print(f"| {name} | {ns:,.0f} | {shown} | {target} |")


if __name__ == "__main__":
    main()
