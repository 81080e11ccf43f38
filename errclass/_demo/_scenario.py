"""The phases of the demo and what each is expected to show."""

from __future__ import annotations

from dataclasses import dataclass

from ._peer import PRODUCERS


@dataclass(frozen=True)
class Segment:
    key: str  # the consumer's phase label
    title: str
    consumer: str
    producer: str  # the peer's producer label
    route: str
    fanout: bool = False
    fault: bool = False
    min_s: float = 8.0
    max_s: float = 30.0
    until: str = ""  # "page", an alert name, or "" (run min_s)
    expect: str = ""


SEGMENTS = (
    Segment(
        "before",
        "1. before",
        "asyncio.TaskGroup; hand-written counter: every non-success is write_failed",
        PRODUCERS["before"],
        "before",
        min_s=12.0,
        until="page",
        expect="pages, falsely: there is no server fault",
    ),
    Segment(
        "producer_fixed",
        "2. producer fixed",
        "asyncio.TaskGroup; the peer classifies with errclass",
        PRODUCERS["producer_fixed"],
        "producer_fixed",
        max_s=45.0,
        until="ClientGoneHigh",
        expect="no page; the client_gone symptom alert fires and points at the consumer",
    ),
    Segment(
        "both_fixed",
        "3. both fixed",
        "errclass.fanout; the peer classifies with errclass",
        PRODUCERS["both_fixed"],
        "both_fixed",
        fanout=True,
        min_s=16.0,
        expect="no stream cut by a sibling, nothing pending or firing",
    ),
    Segment(
        "disk_fault",
        "3b. + disk fault",
        "as 3; the peer's store now writes to /dev/full",
        PRODUCERS["both_fixed"],
        "both_fixed",
        fanout=True,
        fault=True,
        min_s=3.0,
        until="page",
        expect="pages: a genuine server fault",
    ),
)

PAGING = frozenset({"critical", "page"})
