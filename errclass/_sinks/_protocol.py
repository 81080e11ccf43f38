"""What a sink is: ``Sink.bind(producer, role)`` returns a ``Recorder``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .._outcome import Outcome, Role


class Recorder(Protocol):
    """A sink bound to one producer. ``duration`` is set when ``wants_time``;
    ``ctx`` is the OpenTelemetry context captured at start when ``wants_context``.

    ``fast_ok`` is the optional fast path: ``None``, or a callable taking no
    arguments that does all ``ok()`` would do when there is no duration and no
    context (e.g. a pre-bound counter child's ``inc``). When it is the only
    recorder with ``records_ok``, errclass calls it instead of ``ok()``.

    Two optional attributes (read with ``getattr``, so a recorder may omit them)
    do the same for failures, with no duration and no context:
    ``fast_fail``, a mapping from every failure ``Reason`` to a callable taking
    no arguments that does all ``fail()`` would do for that reason (a pre-bound
    child's ``inc``); ``fail_gate``, a pair ``(logger, levels)`` saying that
    ``fail()`` does nothing for a reason unless
    ``logger.isEnabledFor(levels[reason])``, so errclass may skip the call.
    """

    wants_time: bool
    wants_context: bool
    records_ok: bool  # False: ok() does nothing, so it is not called
    kind: str

    @property
    def fast_ok(self) -> Callable[[], object] | None: ...

    def ok(self, duration: float | None, ctx: Any) -> None: ...

    def fail(
        self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any
    ) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Anything ``track()``/``stream()`` accept besides a plain callable or a Counter."""

    def bind(self, producer: str, role: Role) -> Recorder: ...
