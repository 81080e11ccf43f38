"""What the server integrations share: options checked once, and one tracker per
endpoint from a bounded cache."""

from __future__ import annotations

import logging
import threading
from types import FunctionType

from .._names import qualified_name
from .._options import DEFAULT_LOGGER, check, resolve_sinks
from .._outcome import Outcome, Reason
from .._policy import Policy
from .._record import Tracker

#: Producer names are endpoints: a closed set, but never an unbounded one.
MAX_ENDPOINTS = 1000


def shutdown_outcome(shutdown: object) -> Outcome:
    """The outcome of a request the server itself cancelled (``shutdown=``)."""
    try:
        reason = Reason(shutdown)  # type: ignore[arg-type]
    except ValueError:
        allowed = ", ".join(repr(r.value) for r in Reason)
        raise ValueError(f"shutdown= must be one of {allowed}, got {shutdown!r}") from None
    return Outcome(reason, "asyncio.CancelledError", "server_cancelled")


#: The endpoint types ``Endpoints.by_endpoint`` is keyed by: they hash and compare as
#: themselves (a lookup by any other type would only miss, or raise if unhashable).
#: ``type``: a class-based view (only classes of the plain metaclass, which compare by
#: identity).
CACHEABLE = (str, FunctionType, type)


class Endpoints:
    """One tracker per endpoint name, over sinks resolved once.

    *name*, if given, names every endpoint. Past ``MAX_ENDPOINTS`` names, new
    ones share the producer *overflow*.
    """

    __slots__ = ("_lock", "_name", "_overflow", "_policy", "_sinks", "_trackers", "by_endpoint")

    def __init__(
        self,
        *sinks: object,
        name: str | None,
        policy: Policy | None,
        logger: logging.Logger | str | None = DEFAULT_LOGGER,
        overflow: str,
    ) -> None:
        check(policy, "producer", name)
        self._sinks = resolve_sinks(sinks, logger)
        self._name, self._policy, self._overflow = name, policy, overflow
        self._trackers: dict[str, Tracker] = {}
        #: The tracker of each endpoint seen so far, keyed by the name or the function
        #: itself (both hash and compare as themselves): one dict lookup per request
        #: (the ASGI middleware reads it directly; a miss goes to ``tracker()``).
        self.by_endpoint: dict[object, Tracker] = {}
        self._lock = threading.Lock()

    def tracker(self, endpoint: object) -> Tracker:
        """The tracker for *endpoint*: a name, or an object named ``module.qualname``."""
        cacheable = type(endpoint) in CACHEABLE
        if cacheable:
            tracker = self.by_endpoint.get(endpoint)
            if tracker is not None:
                return tracker
        tracker = self._named(endpoint)
        if cacheable and len(self.by_endpoint) < MAX_ENDPOINTS:
            self.by_endpoint[endpoint] = tracker
        return tracker

    def _named(self, endpoint: object) -> Tracker:
        name = self._name or (endpoint if isinstance(endpoint, str) else qualified_name(endpoint))
        tracker = self._trackers.get(name)
        if tracker is None:
            with self._lock:
                if name not in self._trackers and len(self._trackers) >= MAX_ENDPOINTS:
                    name = self._overflow
                tracker = self._trackers.get(name)
                if tracker is None:
                    tracker = Tracker(name, "producer", self._policy, self._sinks)
                    self._trackers[name] = tracker
        return tracker
