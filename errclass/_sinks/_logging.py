"""Logging sink: client_gone at DEBUG, faults at WARNING, nothing built when disabled."""

from __future__ import annotations

import logging
from typing import Any

from .._outcome import Outcome, Reason, Role

_WARNING, _DEBUG = logging.WARNING, logging.DEBUG
# The level fail() logs each reason at (the faults at WARNING): its fail_gate.
_LEVELS = {
    Reason.CLIENT_GONE: _DEBUG,
    Reason.DEADLINE_EXCEEDED: _WARNING,
    Reason.WRITE_FAILED: _WARNING,
}


class LoggingSink:
    """Logs failures to *logger* (default ``errclass``): ``client_gone`` at DEBUG
    without a traceback, ``deadline_exceeded`` and ``write_failed`` at WARNING
    with ``exc_info``. ``ok`` is logged only if *ok_level* is given. Records carry
    ``errclass_producer``, ``errclass_reason``, ``errclass_error_type``,
    ``errclass_rule``, ``errclass_role`` and ``errclass_duration`` as extra fields."""

    kind = "logging"

    def __init__(self, logger: logging.Logger | str | None = None, *, ok_level: int | None = None):
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "errclass")
        if not isinstance(logger, logging.Logger | logging.LoggerAdapter):
            raise TypeError(f"LoggingSink needs a logging.Logger or a name, got {logger!r}")
        self.logger, self.ok_level = logger, ok_level

    def bind(self, producer: str, role: Role) -> _LogRecorder:
        return _LogRecorder(self.logger, producer, role, self.ok_level)


class _LogRecorder:
    __slots__ = ("fail_gate", "logger", "ok_level", "producer", "records_ok", "role")
    wants_time = False  # durations are logged when another sink measures them
    wants_context = False
    kind = "logging"
    fast_ok = None

    def __init__(self, logger: logging.Logger, producer: str, role: Role, ok_level: int | None):
        self.logger, self.producer, self.role, self.ok_level = logger, producer, role, ok_level
        self.records_ok = ok_level is not None
        # fail() logs nothing unless logger.isEnabledFor(its level) is true then.
        self.fail_gate = (logger, _LEVELS)

    def ok(self, duration: float | None, ctx: Any) -> None:
        if self.ok_level is not None and self.logger.isEnabledFor(self.ok_level):
            self.logger.log(
                self.ok_level,
                "%s finished",
                self.producer,
                extra=self._extra(None, duration),
            )

    def fail(self, outcome: Outcome, exc: BaseException, duration: float | None, ctx: Any) -> None:
        level = _WARNING if outcome.is_error else _DEBUG
        if not self.logger.isEnabledFor(level):
            return
        self.logger.log(
            level,
            "%s ended: %s (%s, rule %s)",
            self.producer,
            outcome.reason.value,
            outcome.error_type,
            outcome.rule,
            exc_info=exc if level >= logging.WARNING else None,
            extra=self._extra(outcome, duration),
        )

    def _extra(self, outcome: Outcome | None, duration: float | None) -> dict[str, Any]:
        return {
            "errclass_producer": self.producer,
            "errclass_reason": (outcome.reason if outcome else Reason.OK).value,
            "errclass_error_type": outcome.error_type if outcome else None,
            "errclass_rule": outcome.rule if outcome else "ok",
            "errclass_role": self.role,
            "errclass_duration": duration,
        }
