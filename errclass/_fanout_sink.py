"""The fan-out's default counter: ``errclass_fetch_outcomes_total{fanout, reason, cancelled}``.

In the consumer role ``client_gone`` has two causes a dashboard must tell
apart: we cut the fetch (the caller was cancelled, a cascade, our own
timeout), or the upstream dropped us. ``reason`` stays the closed set every
errclass metric shares; ``cancelled`` ("true"/"false") says which side cut it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from typing import Any

from ._fanout_run import CUT
from ._outcome import Outcome, Role
from ._sinks import Recorder

_NAME = "errclass_fetch_outcomes"
_DOC = (
    "Outcomes of errclass.fanout children (consumer role) by reason; cancelled=true "
    "when our side cut the fetch (caller cancelled, our timeout), false otherwise."
)
_lock = threading.Lock()
_shared: list[FetchSink] = []


def default_sink() -> FetchSink:
    """``errclass_fetch_outcomes_total{fanout, reason, cancelled}`` in the default registry.

    A counter of its own, not ``errclass_outcomes_total``: when both ends run
    errclass, one transfer would otherwise be counted twice in the same metric.
    """
    with _lock:
        if not _shared:
            from ._sinks._prometheus import shared_counter

            counter = shared_counter(_NAME, _DOC, ("fanout", "reason", "cancelled"))
            _shared.append(FetchSink(counter))
        return _shared[0]


class FetchSink:
    """Counts each child in ``cancelled="true"`` or ``"false"`` series of one counter."""

    kind = "prometheus"

    def __init__(self, counter: Any) -> None:
        from ._sinks import PrometheusSink

        self.ours, self.theirs = (
            PrometheusSink(counter, producer_label="fanout", static={"cancelled": v})
            for v in ("true", "false")
        )

    def bind(self, producer: str, role: Role) -> Recorder:
        return _FetchRecorder(self.ours.bind(producer, role), self.theirs.bind(producer, role))


class _FetchRecorder:
    __slots__ = ("fast_ok", "ours", "theirs", "wants_time")
    wants_context = True
    records_ok = True
    kind = "prometheus"

    def __init__(self, ours: Any, theirs: Any) -> None:
        self.ours, self.theirs = ours, theirs
        self.wants_time = theirs.wants_time
        self.fast_ok = theirs.fast_ok  # an ok is never cut by us

    def ok(self, duration: float | None, ctx: Any) -> None:
        self.theirs.ok(duration, ctx)

    def fail(self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any) -> None:
        (self.ours if cut_by_us(exc) else self.theirs).fail(outcome, exc, duration, ctx)


def cut_by_us(exc: BaseException) -> bool:
    """Did our side end this fetch: a cancellation, or a timeout raised out of one
    (the fan-out's own, ``asyncio.timeout``, ``anyio.fail_after``)?"""
    if _is_cancellation(exc) or getattr(exc, CUT, False):
        return True
    if isinstance(exc, TimeoutError):
        return any(e is not None and _is_cancellation(e) for e in (exc.__cause__, exc.__context__))
    return False


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)
