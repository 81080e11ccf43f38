"""errclass: tell a client walking away from a real server fault.

Classify how a streaming producer ended (``ok``, ``client_gone``,
``deadline_exceeded``, ``write_failed``) and record it exactly once to
Prometheus, OpenTelemetry and logging, without changing the program.
"""

from __future__ import annotations

from ._deadline import deadline
from ._fanout import FanoutError, detached, fanout, fanout_sync
from ._outcome import Event, Outcome, Reason, Role
from ._policy import Policy, classify
from ._rule import Rule
from ._scope import Stream, stream, track
from ._sinks import LoggingSink, OTelSink, PrometheusSink, Recorder, Sink

__all__ = [
    "Event",
    "FanoutError",
    "LoggingSink",
    "OTelSink",
    "Outcome",
    "Policy",
    "PrometheusSink",
    "Reason",
    "Recorder",
    "Role",
    "Rule",
    "Sink",
    "Stream",
    "classify",
    "deadline",
    "detached",
    "fanout",
    "fanout_sync",
    "stream",
    "track",
]
