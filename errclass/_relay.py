"""Relay: lets a wrapped generator delegate with ``yield from`` and still keep
the generator protocol of the README's guarantee 3.

``yield from inner`` forwards each item in C, but a ``GeneratorExit`` subclass
thrown in closes *inner* (PEP 380) instead of reaching it as that very object.
The wrapper delegates to a Relay instead: an ``islice(inner, None)`` whose
``next()`` is C all the way down to *inner*, whose ``send``/``throw`` are
*inner*'s own bound methods, and whose ``close()``, which CPython calls in
place of forwarding a ``GeneratorExit`` (subclass or not), only notes that it
was called. The wrapper then closes *inner* itself, or throws the subclass in.
"""

from __future__ import annotations

from collections.abc import Generator
from itertools import islice
from typing import Any

__all__ = ["Relay"]


class _Relay(islice):  # type: ignore[type-arg]
    __slots__ = ("closing", "send", "throw")

    def close(self) -> None:
        self.closing = True


def _keeps_the_return_value() -> bool:
    """islice leaves *inner*'s ``StopIteration`` set, so ``yield from`` gets its
    value (CPython's behaviour, not a documented promise): checked once, and
    without it every wrapper takes the Python loop."""

    def inner() -> Generator[int, None, str]:
        yield 1
        return "value"

    def outer() -> Generator[int, None, object]:
        return (yield from _Relay(inner(), None))

    g = outer()
    next(g)
    try:
        next(g)
    except StopIteration as stop:
        return bool(stop.value == "value")
    return False


Relay: Any = _Relay if _keeps_the_return_value() else None
