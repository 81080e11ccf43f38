"""Deadlines the classifier can see: a cancellation caused by one is ``deadline_exceeded``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Protocol

from . import _client_state
from ._outcome import Reason


class Expirable(Protocol):
    def expired(self) -> bool: ...


class Expiry:
    """An ``Expirable`` from a zero-argument check: what an integration hands to
    :func:`watching` (a fan-out child's own timeout scope, a gRPC call's deadline)."""

    __slots__ = ("_check",)

    def __init__(self, check: Callable[[], object]) -> None:
        self._check = check

    def expired(self) -> bool:
        return bool(self._check())


# Deadlines enclosing the current context, innermost last. A tuple, so that a
# generator finalised in another context still sees the one it captured.
_ACTIVE: ContextVar[tuple[Expirable, ...]] = ContextVar("errclass_deadlines", default=())
#: The deadlines enclosing the current context (``()`` when none), for a caller
#: that wants to skip ``any_expired()`` when there is nothing to ask.
watched = _ACTIVE.get


def any_expired() -> bool:
    """True when a deadline enclosing the current context has passed."""
    for d in _ACTIVE.get():
        try:
            if d.expired():
                return True
        except Exception:
            continue
    return False


class OnExpiry:
    """A rule's reason function: *expired* when a deadline enclosing the current
    context has passed, else *otherwise*. A policy knows what it answers while no
    deadline is watched without calling it (``Policy.classify``'s second lookup)."""

    __slots__ = ("expired", "otherwise")

    def __init__(self, expired: Reason, otherwise: Reason) -> None:
        self.expired = expired
        self.otherwise = otherwise

    def __call__(self, exc: BaseException, role: str) -> Reason:
        return self.expired if watched() and any_expired() else self.otherwise


@contextmanager
def watching(checker: Expirable) -> Iterator[None]:
    """Make *checker* visible to the classifier inside the block (for integrations)."""
    token = _ACTIVE.set((*_ACTIVE.get(), checker))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class deadline:
    """``asyncio.timeout(seconds)`` whose cancellations classify as ``deadline_exceeded``.

    The caller sees exactly what ``asyncio.timeout`` gives: ``TimeoutError`` on
    expiry, the same ``CancelledError`` on an outside cancellation. Inside the
    block, a wrapped producer that is cancelled because the deadline passed is
    recorded ``deadline_exceeded`` instead of ``client_gone``.
    """

    __slots__ = ("_seconds", "_timeout", "_token")

    def __init__(self, seconds: float | None) -> None:
        if seconds is not None and not isinstance(seconds, int | float):
            raise TypeError(f"deadline() takes seconds as a number or None, got {seconds!r}")
        self._seconds = seconds
        self._timeout: asyncio.Timeout | None = None

    async def __aenter__(self) -> asyncio.Timeout:
        if self._timeout is not None:
            raise RuntimeError("this errclass.deadline() was already entered; make one per block")
        timeout = asyncio.timeout(self._seconds)
        self._timeout = timeout
        await timeout.__aenter__()
        self._token = _ACTIVE.set((*_ACTIVE.get(), timeout))
        return timeout

    async def __aexit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._timeout is not None
        try:
            _ACTIVE.reset(self._token)
        except ValueError:
            # Exited in another context (an async generator closed by another
            # task): take this deadline out of that context's tuple instead.
            timeout = self._timeout
            _ACTIVE.set(tuple(d for d in _ACTIVE.get() if d is not timeout))
        try:
            await self._timeout.__aexit__(typ, exc, tb)
        finally:
            if self._timeout.expired():
                # Tell the request errclass serves: a framework may swallow the
                # TimeoutError (Quart) or never close the producer it stopped.
                transport = _client_state.active()
                if transport is not None:
                    transport.deadline = True
        return None
