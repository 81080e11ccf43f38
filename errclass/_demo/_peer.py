"""The asset peer: a Starlette app under uvicorn, serving subtree bodies that take a while.

Run as ``python -m errclass._demo._peer --fd N --log FILE`` on a listening socket
the demo opened. Three deployments of one producer, one per phase, each under its
own ``producer`` label so Prometheus judges each phase on its own series:

* ``/before/...``: the Go code before the seed PR, a hand-written counter that
  counts every stream that did not finish as ``write_failed`` and logs it at WARN;
* ``/producer_fixed/...`` and ``/both_fixed/...``: the same producer under
  ``errclass.stream()`` and ``ErrclassMiddleware(record=False)``.

Every subtree body is produced chunk by chunk (a lookup per chunk, then a write
to the store, then to the client), the way the seed's producer tees into its
subtreeData file. A stream that does not finish aborts its store entry: those
bytes were produced and paid for, then thrown away. ``POST /fault?on=1`` points
the store at ``/dev/full``: a genuine server-side fault. A subtree whose hash
starts with ``dead`` fails its lookup with a 500 before any body is produced (the
sibling failure that starts a cascade; not a stream, so not an outcome).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

CHUNK = b"\x5a" * 8192
CHUNK_DELAY = 0.02  # seconds of lookups per chunk
CHUNKS = (3, 24)  # a body has this many chunks: 60 ms to 480 ms of work
LOOKUP_FAILS_AFTER = (0.04, 0.16)  # seconds before the poisoned subtree's 500
METRIC = "errclass_outcomes"  # errclass's default name, so the default render applies
PRODUCERS = {
    "before": "subtree_data/before",
    "producer_fixed": "subtree_data/producer_fixed",
    "both_fixed": "subtree_data/both_fixed",
}
REASONS = ("ok", "client_gone", "deadline_exceeded", "write_failed")

log = logging.getLogger("asset.subtree_data")


class Metrics:
    """The peer's own registry: the outcome counter (shared by the hand-written
    counting and errclass, as the seed's metric was), the store's aborts, log
    lines by level, and streams whose outcome is not recorded yet."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        r = self.registry
        self.outcomes = Counter(
            METRIC, "Subtree data streams by how they ended", ["producer", "reason"], registry=r
        )
        self.discarded = Counter(
            "asset_store_discarded_bytes",
            "Bytes produced into the store, then aborted because the stream ended early",
            ["producer"],
            registry=r,
        )
        self.aborts = Counter(
            "asset_store_aborts", "Store entries aborted", ["producer"], registry=r
        )
        self.log_lines = Counter(
            "asset_log_lines", "Log lines written, by level", ["producer", "level"], registry=r
        )
        self.unrecorded = Gauge(
            "asset_streams_unrecorded",
            "Streams started whose outcome is not counted yet",
            registry=r,
        )
        for p in PRODUCERS.values():  # every series exists from the start, at 0
            for reason in REASONS:
                self.outcomes.labels(producer=p, reason=reason)
            self.discarded.labels(producer=p)
            self.aborts.labels(producer=p)
            for level in ("DEBUG", "WARNING"):
                self.log_lines.labels(producer=p, level=level)


class CountLines(logging.Handler):
    """Counts log lines by producer and level (what a log pipeline would chart)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.DEBUG)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        producer = getattr(record, "errclass_producer", None) or getattr(record, "producer", None)
        if producer in PRODUCERS.values():
            level = "WARNING" if record.levelno >= logging.WARNING else "DEBUG"
            self.metrics.log_lines.labels(producer=producer, level=level).inc()


class Peer:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.fault = False

    async def produce(self, key: str, producer: str) -> AsyncIterator[bytes]:
        """One subtree body: per chunk a lookup, a store write, a yield to the client."""
        self.metrics.unrecorded.inc()  # counted down when the outcome is recorded
        chunks = random.Random(key).randint(*CHUNKS)
        produced, finished = 0, False
        try:
            with open("/dev/full" if self.fault else "/dev/null", "wb", buffering=0) as store:
                for _ in range(chunks):
                    await asyncio.sleep(CHUNK_DELAY)
                    store.write(CHUNK)  # ENOSPC while the fault is on
                    produced += len(CHUNK)
                    yield CHUNK
            finished = True
        finally:
            if not finished:
                self.metrics.aborts.labels(producer=producer).inc()
                self.metrics.discarded.labels(producer=producer).inc(produced)

    async def legacy(self, body: AsyncIterator[bytes], producer: str) -> AsyncIterator[bytes]:
        """The counting before the seed PR, hand-written: anything but a finished
        stream is ``write_failed``, logged at WARN."""
        ok = self.metrics.outcomes.labels(producer=producer, reason="ok")
        failed = self.metrics.outcomes.labels(producer=producer, reason="write_failed")
        try:
            async for chunk in body:
                yield chunk
        except BaseException as e:
            failed.inc()
            self.metrics.unrecorded.dec()
            log.warning("write subtree data: %s", type(e).__name__, extra={"producer": producer})
            raise
        else:
            ok.inc()
            self.metrics.unrecorded.dec()
        finally:
            await body.aclose()  # type: ignore[attr-defined]

    def recorded(self, _event: object) -> None:
        """An errclass sink: the outcome is counted."""
        self.metrics.unrecorded.dec()


def build_app(metrics: Metrics) -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route

    import errclass
    from errclass.integrations.asgi import ErrclassMiddleware

    peer = Peer(metrics)
    sink = errclass.PrometheusSink(metrics.outcomes)

    async def poisoned(key: str) -> Response | None:
        if not key.startswith("dead"):
            return None
        await asyncio.sleep(random.Random(key).uniform(*LOOKUP_FAILS_AFTER))
        return PlainTextResponse("subtree lookup failed\n", status_code=500)

    async def before(request: Request) -> Response:
        key = request.path_params["key"]
        producer = PRODUCERS["before"]
        return await poisoned(key) or StreamingResponse(
            peer.legacy(peer.produce(key, producer), producer)
        )

    async def fixed(request: Request) -> Response:
        key, phase = request.path_params["key"], request.path_params["phase"]
        producer = PRODUCERS.get(phase)
        if producer is None or phase == "before":
            return PlainTextResponse("no such phase\n", status_code=404)
        failed = await poisoned(key)
        if failed is not None:
            return failed
        body = errclass.stream(peer.produce(key, producer), sink, peer.recorded, name=producer)
        return StreamingResponse(body)

    async def fault(request: Request) -> Response:
        peer.fault = request.query_params.get("on") == "1"
        return PlainTextResponse(f"fault {'on' if peer.fault else 'off'}\n")

    async def metrics_page(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    fixed_app = Starlette(routes=[Route("/{phase}/subtree_data/{key}", fixed)])
    return Starlette(
        routes=[
            Route("/before/subtree_data/{key}", before),
            Route("/fault", fault, methods=["POST"]),
            Route("/metrics", metrics_page),
            Mount("", app=ErrclassMiddleware(fixed_app, record=False)),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fd", type=int, required=True, help="a listening socket's file descriptor")
    p.add_argument("--log", required=True, help="file for the WARN lines")
    args = p.parse_args(argv)
    metrics = Metrics()
    counting = CountLines(metrics)
    to_file = logging.FileHandler(args.log)
    to_file.setLevel(logging.WARNING)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in ("errclass", "asset"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(counting)
        logger.addHandler(to_file)
        logger.propagate = False
    sock = socket.socket(fileno=args.fd)
    config = uvicorn.Config(build_app(metrics), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
