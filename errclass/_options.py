"""The options every entry point takes (sinks, policy, role, name, logger): checked
once, with one error message each, and resolved to the sinks a ``Tracker`` binds.

``track()``, ``stream()``, ``fanout()`` and the integrations all check and resolve
their options here (``check``, ``resolve_sinks``), so an option means the same
everywhere; ``tracker()`` does both and builds the ``Tracker`` in one call.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from typing import Any

from ._outcome import ROLES, Role
from ._policy import Policy
from ._record import Tracker
from ._sinks import CallableSink, LoggingSink, PrometheusSink, Sink
from ._sinks._prometheus import default_sink

#: ``logger=`` left out: the ``errclass`` logger (``None`` means no logging sink).
DEFAULT_LOGGER: Any = object()

_COUNTER_SINKS: weakref.WeakKeyDictionary[Any, Sink] = weakref.WeakKeyDictionary()


def check(policy: object, role: object, name: object = None, *, what: str = "") -> None:
    """Check ``policy=``, ``role=`` and ``name=``; *what* prefixes the message (``"fanout "``)."""
    if policy is not None and not isinstance(policy, Policy):
        raise TypeError(f"policy= must be an errclass.Policy, got {policy!r}")
    if role not in ROLES:
        raise ValueError(f"role= must be 'producer' or 'consumer', got {role!r}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"{what}name= must be a string, got {name!r}")


def tracker(
    name: str,
    *sinks: object,
    role: Role = "producer",
    policy: Policy | None = None,
    logger: logging.Logger | str | None = DEFAULT_LOGGER,
) -> Tracker:
    """The tracker of producer *name*, with the options of ``track()`` checked."""
    check(policy, role, name)
    return Tracker(name, role, policy, resolve_sinks(sinks, logger))


def resolve_sinks(sinks: Iterable[object], logger: logging.Logger | str | None) -> tuple[Sink, ...]:
    """What ``track(*sinks, logger=...)`` records to: Counters, sinks and callables as
    given (none: the default counter), plus a ``LoggingSink`` unless *logger* is None
    or one was given."""
    given = tuple(sinks)
    out = [_sink(s) for s in given]
    if not given:
        out.append(default_sink())
    if logger is DEFAULT_LOGGER:
        logger = "errclass"
    if logger is not None and not any(isinstance(s, LoggingSink) for s in out):
        out.append(LoggingSink(logger))
    return tuple(out)


def _sink(s: object) -> Sink:
    try:
        kind = _kind(s)
    except Exception as e:  # e.g. a __getattr__ that raises: not a sink we can use
        raise TypeError(
            "errclass sinks are Counters, errclass sinks or callables taking an Event; "
            f"a {type(s).__module__}.{type(s).__qualname__} object raised "
            f"{type(e).__name__} when inspected"
        ) from e
    if kind == "sink":
        return s  # type: ignore[return-value]
    if kind == "counter":
        sink = _COUNTER_SINKS.get(s)
        if sink is None:  # one sink per counter, so children are bound once
            sink = _COUNTER_SINKS[s] = PrometheusSink(s)  # type: ignore[arg-type]
        return sink
    if kind == "callable":
        return CallableSink(s)  # type: ignore[arg-type]
    raise TypeError(
        f"errclass sinks are Counters, errclass sinks or callables taking an Event; got {s!r}"
    )


def _kind(s: object) -> str:
    if isinstance(s, Sink):
        return "sink"
    if type(s).__module__.startswith("prometheus_client") and hasattr(s, "_labelnames"):
        return "counter"
    return "callable" if callable(s) else "other"
