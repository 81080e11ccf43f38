"""What every fan-out backend shares: the error it raises and the bookkeeping of one call."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, Generic, Literal, TypeVar

from ._record import Tracker

T = TypeVar("T")
AfterFailure = Literal["skip", "start"]

# Set on the TimeoutErrors a fan-out makes when it cuts a child at its timeout,
# so the fetch counter can tell "we cut it" from a client library's own timeout.
CUT = "_errclass_cut"


class FanoutError(BaseExceptionGroup[BaseException]):
    """Some children of a fan-out failed.

    ``exceptions`` holds every failure in input order (the very objects the
    children raised); ``indices[k]`` is the input position of ``exceptions[k]``.
    When the caller was cancelled after children failed, its cancellation
    follows as the last member, without an index. ``results`` maps the position
    of each child that succeeded to its result; ``not_started`` lists the
    positions of children that never ran. It is an ``ExceptionGroup``
    (``except*``, ``except Exception``) unless a member is a ``BaseException``
    such as that cancellation. ``except*`` and trio's cancel scopes split it
    into ``FanoutError`` parts that keep all three attributes.
    """

    indices: tuple[int, ...]
    results: dict[int, Any]
    not_started: tuple[int, ...]

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[BaseException],
        indices: Iterable[int] = (),
        results: dict[int, Any] | None = None,
        not_started: Iterable[int] = (),
    ) -> FanoutError:
        plain = cls is FanoutError and all(isinstance(e, Exception) for e in exceptions)
        self = super().__new__(_FanoutExceptionGroup if plain else cls, message, exceptions)
        self.indices = tuple(indices)
        self.results = dict(results or {})
        self.not_started = tuple(not_started)
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[BaseException],
        indices: Iterable[int] = (),
        results: dict[int, Any] | None = None,
        not_started: Iterable[int] = (),
    ) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[BaseException]) -> FanoutError:  # type: ignore[override]
        """The part of this group holding *excs* (``split``, ``subgroup``, ``except*``)."""
        return FanoutError(
            self.message, excs, self._indices_of(excs), self.results, self.not_started
        )

    def _indices_of(self, excs: Sequence[BaseException]) -> list[int]:
        members = list(zip(self.exceptions, self.indices, strict=False))
        out = []
        for e in excs:
            # The very member, or a nested group of a child that was split itself.
            leaf = _first_leaf(e)
            for member, i in members:
                if member is e or _first_leaf(member) is leaf:
                    out.append(i)
                    break
        return out


class _FanoutExceptionGroup(FanoutError, ExceptionGroup[Exception]):
    """The usual kind: every failure is an ``Exception``."""


# Tracebacks and reprs show the name users catch.
_FanoutExceptionGroup.__name__ = _FanoutExceptionGroup.__qualname__ = "FanoutError"


def _first_leaf(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


_MISSING: Any = object()


class Run(Generic[T]):
    """One fan-out call: which child starts next, and how each one ended."""

    __slots__ = (
        "caller_cancelled", "children", "errors", "fail_fast", "first", "limit", "next",
        "results", "skip", "stop", "timeout", "tracker", "unstarted",
    )  # fmt: skip

    def __init__(
        self,
        children: list[Any],
        timeout: float | None,
        limit: int,
        after_failure: AfterFailure,
        *,
        fail_fast: bool,
        tracker: Tracker,
    ) -> None:
        self.children, self.timeout, self.limit, self.tracker = children, timeout, limit, tracker
        self.skip = after_failure == "skip"
        self.fail_fast = fail_fast
        self.results: list[Any] = [_MISSING] * len(children)
        self.errors: dict[int, BaseException] = {}
        self.first: int | None = None  # the first child to fail, in time
        self.unstarted: set[int] = set()
        self.next = 0
        self.stop = False  # start nothing more
        self.caller_cancelled = False

    def take(self) -> int | None:
        """The position of the next child to start, or None."""
        if self.stop or self.next >= len(self.children):
            return None
        self.next += 1
        return self.next - 1

    def more(self) -> bool:
        return not self.stop and self.next < len(self.children)

    def failed(self, i: int, exc: BaseException) -> None:
        self.errors[i] = exc
        if self.first is None:
            self.first = i
        if self.skip:
            self.stop = True

    def awaitable(self, i: int) -> Awaitable[Any]:
        child = self.children[i]
        if not callable(child):
            return child  # type: ignore[no-any-return]
        out = child()
        if not inspect.isawaitable(out):
            raise TypeError(
                f"fanout child {i} ({child!r}) returned {type(out).__name__}, not an awaitable: "
                "it is a sync callable; use errclass.fanout_sync for those"
            )
        return out

    def not_started(self) -> list[int]:
        """Positions that never ran; their coroutine objects are closed unawaited."""
        out = sorted(self.unstarted.union(range(self.next, len(self.children))))
        for i in out:
            if inspect.iscoroutine(self.children[i]):
                self.children[i].close()
        return out

    def error(self, cancel: BaseException | None = None) -> FanoutError:
        """Every failure in input order; the caller's *cancel* last, if any."""
        order = sorted(self.errors)
        skipped = self.not_started()
        n = len(self.children)
        message = f"{len(order)} of {n} fanout children failed"
        if skipped:
            message += f", {len(skipped)} not started"
        if cancel is not None:
            message += ", then the caller was cancelled"
        results = {i: r for i, r in enumerate(self.results) if r is not _MISSING}
        members = [self.errors[i] for i in order] + ([] if cancel is None else [cancel])
        return FanoutError(message, members, order, results, skipped)

    def outcome(self) -> list[T]:
        """The results in input order, or raise what the call ends with."""
        if self.errors:
            if self.fail_fast:
                assert self.first is not None
                self.not_started()
                raise self.errors[self.first]  # as errgroup's Wait returns it
            raise self.error()
        return self.results

    def cancelled(self, cancel: BaseException) -> BaseException:
        """What to raise when the caller was cancelled: the cancellation alone, or
        with the failures before it (so they reach the caller on every backend)."""
        if self.errors:
            return self.error(cancel)
        self.not_started()
        return cancel


def cut(error: BaseException) -> BaseException:
    """Mark *error* as made by a fan-out that cut its child at its timeout."""
    setattr(error, CUT, True)
    return error


class Child:
    """What ``errclass.detached()`` needs to know about the fan-out child it runs in."""

    __slots__ = ("deadline", "expired")

    def __init__(self, deadline: float | None, expired: Callable[[], bool]) -> None:
        # detached()'s bound, in the event loop's clock (None: none): the child's deadline
        # (on asyncio up to 1 ms past it, as children started within 1 ms share one Child)
        self.deadline = deadline
        self.expired = expired  # did the child's own timeout cut it?


CHILD: ContextVar[Child | None] = ContextVar("errclass_fanout_child", default=None)
