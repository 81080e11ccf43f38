"""Checked by mypy --strict (see pyproject): decorated callables keep precise types."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Any, assert_type

import errclass


@errclass.track()
def plain(a: int, *, b: str = "") -> float:
    return float(a)


@errclass.track()
async def coro(a: int) -> str:
    return str(a)


@errclass.track()
def gen(n: int) -> Generator[bytes, None, str]:
    yield b"x" * n
    return "done"


@errclass.track()
async def agen(n: int) -> AsyncGenerator[bytes, None]:
    yield b"x" * n


async def use_coro() -> None:
    assert_type(await coro(1), str)


def check() -> None:
    assert_type(plain(1, b="x"), float)
    assert_type(gen(1), Generator[bytes, None, str])
    assert_type(agen(1), AsyncGenerator[bytes, None])
    assert_type(errclass.classify(BrokenPipeError()).reason, errclass.Reason)
    assert_type(errclass.stream([b"a"]), errclass.Stream[bytes])

    async def body() -> AsyncIterator[bytes]:
        yield b"a"

    assert_type(errclass.stream(body()), AsyncGenerator[bytes, Any])


class CountingRecorder:
    """A custom sink's recorder, typed against the exported protocol."""

    wants_time = False
    wants_context = False
    records_ok = True
    kind = "callable"
    fast_ok = None

    def __init__(self) -> None:
        self.seen: list[errclass.Reason] = []

    def ok(self, duration: float | None, ctx: Any) -> None:
        self.seen.append(errclass.Reason.OK)

    def fail(
        self, outcome: errclass.Outcome, exc: BaseException, duration: float | None, ctx: Any
    ) -> None:
        self.seen.append(outcome.reason)


class CountingSink:
    def bind(self, producer: str, role: errclass.Role) -> errclass.Recorder:
        return CountingRecorder()


def custom_sink() -> None:
    sink: errclass.Sink = CountingSink()
    errclass.track(sink)(plain)
