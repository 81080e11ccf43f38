"""The closed set of reasons and the value objects that carry them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Role = Literal["producer", "consumer"]
ROLES: tuple[Role, ...] = ("producer", "consumer")


class Reason(StrEnum):
    """How a stream ended. The values are the label values, and a closed set."""

    OK = "ok"
    CLIENT_GONE = "client_gone"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    WRITE_FAILED = "write_failed"


# Severity order for exception groups: the most severe leaf decides.
SEVERITY: dict[Reason, int] = {
    Reason.OK: 0,
    Reason.CLIENT_GONE: 1,
    Reason.DEADLINE_EXCEEDED: 2,
    Reason.WRITE_FAILED: 3,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The classification of one ending.

    ``error_type`` is ``None`` for ``ok``; otherwise the qualified class name of
    the exception that decided (OpenTelemetry ``error.type`` style), or
    ``"_OTHER"`` for a class outside the standard library and the policy's
    rules, so that it stays a bounded value. ``rule`` names the rule that decided.
    """

    reason: Reason
    error_type: str | None
    rule: str

    @property
    def is_error(self) -> bool:
        """True for the reasons that are faults of ours: not ``ok``, not ``client_gone``."""
        return self.reason in (Reason.WRITE_FAILED, Reason.DEADLINE_EXCEEDED)


OK = Outcome(Reason.OK, None, "ok")


@dataclass(slots=True)
class Event:
    """One recorded ending, as handed to callable sinks and to ``errclass.testing``."""

    producer: str
    role: Role
    outcome: Outcome
    exception: BaseException | None
    duration: float | None

    @property
    def reason(self) -> Reason:
        return self.outcome.reason
