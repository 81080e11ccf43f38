"""Where outcomes go: the sink protocol and the Prometheus, OpenTelemetry, logging
and plain-callable sinks. Backends are imported when a sink is made or bound."""

from __future__ import annotations

from ._callable import CallableSink
from ._logging import LoggingSink
from ._opentelemetry import OTelSink
from ._prometheus import PrometheusSink
from ._protocol import Recorder, Sink

__all__ = ["CallableSink", "LoggingSink", "OTelSink", "PrometheusSink", "Recorder", "Sink"]
