"""errclass: tell a client walking away from a real server fault.

Classify how a streaming producer ended (``ok``, ``client_gone``,
``deadline_exceeded``, ``write_failed``) and record it exactly once to
Prometheus, OpenTelemetry and logging, without changing the program.
"""

from __future__ import annotations

from ._deadline import deadline
from ._fanout import FanoutError, fanout, fanout_sync
from ._logging import LoggingSink
from ._opentelemetry import OTelSink
from ._outcome import Event, Outcome, Reason, Role
from ._policy import Policy, Rule, classify
from ._prometheus import PrometheusSink
from ._record import Sink
from ._scope import Stream, stream, track

__all__ = [
    "Event",
    "FanoutError",
    "LoggingSink",
    "OTelSink",
    "Outcome",
    "Policy",
    "PrometheusSink",
    "Reason",
    "Role",
    "Rule",
    "Sink",
    "Stream",
    "classify",
    "deadline",
    "fanout",
    "fanout_sync",
    "stream",
    "track",
]
