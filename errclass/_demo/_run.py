"""Runs the demo: starts the peer, the validator's metrics and Prometheus, plays the
phases, reads every number back from Prometheus, writes the table and the report."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._prometheus import SCALE, DemoError, Prometheus, compress, shipped_rules, spawn, stop
from ._scenario import PAGING, SEGMENTS, Segment
from ._validator import Validator

# Instant queries read at each segment's start and end; the difference is the segment's.
SNAPSHOTS = {
    "outcomes": 'sum by (reason) (errclass_outcomes_total{{job="asset",producer="{p}"}})',
    "discarded_bytes": 'sum(asset_store_discarded_bytes_total{{job="asset",producer="{p}"}})',
    "log_lines": 'sum by (level) (asset_log_lines_total{{job="asset",producer="{p}"}})',
    "fetches": 'sum by (result) (block_validator_fetches_total{{phase="{k}"}})',
    "blocks": 'sum by (result) (block_validator_blocks_total{{phase="{k}"}})',
    "fanout": 'sum by (reason) (errclass_fetch_outcomes_total{{job="block_validator"}})',
}
RATES = 'sum by (reason) (rate(errclass_outcomes_total{{job="asset",producer="{p}"}}[3s]))'
CUT_RATE = 'sum(rate(block_validator_fetches_total{{phase="{k}",result="cut_by_sibling"}}[3s]))'
ALERTS = "ALERTS"


def _bind(port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        why = "is in use" if e.errno == errno.EADDRINUSE else f"cannot be bound ({e.strerror})"
        raise DemoError(f"port {port} on 127.0.0.1 {why} ({what})") from None
    return sock


def _free_port(port: int, what: str) -> int:
    with _bind(port, what) as s:
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, binary: str, out: Path, prometheus_port: int, peer_port: int) -> None:
        from rich.console import Console

        self.binary, self.out = binary, out.resolve()
        self.prometheus_port, self.peer_port = prometheus_port, peer_port
        plain = Console()
        # Not a terminal (a log, a test): wide enough for the table on one line per row.
        self.console = Console(highlight=False, width=None if plain.is_terminal else 190)
        self.work = self.out / "run"
        self.peer: subprocess.Popen[bytes] | None = None
        self.prom: Prometheus | None = None
        self.metrics_server: Any = None
        self.results: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stop everything this demo started, each by its own PID; idempotent."""
        if self.prom is not None:
            self.prom.stop()
        stop(self.peer)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        shutil.rmtree(self.work, ignore_errors=True)

    def _log_validator(self) -> None:
        """The validator's own errclass log lines (fanout's WARNINGs for the 500s) go to
        a file beside the report, not over the progress display."""
        import logging

        handler = logging.FileHandler(self.out / "validator.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log = logging.getLogger("errclass")
        log.addHandler(handler)
        log.propagate = False

    def _start_peer(self) -> str:
        sock = _bind(self.peer_port, "the asset peer, --peer-port")
        sock.listen(512)
        port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "errclass._demo._peer", "--fd", str(sock.fileno()),
               "--log", str(self.work / "peer-warnings.log")]  # fmt: skip
        try:
            self.peer = spawn(cmd, self.work / "peer.log", pass_fds=[sock.fileno()])
        finally:
            sock.close()
        import httpx

        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.peer.poll() is not None:
                tail = (self.work / "peer.log").read_text(errors="replace")[-2000:]
                raise DemoError(f"the asset peer exited with {self.peer.returncode}:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200:
                    return f"127.0.0.1:{port}"
            except httpx.HTTPError:
                time.sleep(0.1)
        raise DemoError("the asset peer did not answer within 30s")

    def _start_validator_metrics(self) -> str:
        from prometheus_client import start_http_server

        server, _thread = start_http_server(0, addr="127.0.0.1")
        self.metrics_server = server
        return f"127.0.0.1:{server.server_port}"

    def _start_prometheus(self, targets: dict[str, str]) -> Prometheus:
        port = _free_port(self.prometheus_port, "Prometheus, --prometheus-port")
        rules, data = shipped_rules()
        self.results["rules"] = {"alerts_config": data.get("alerts", {})}
        self.prom = Prometheus(self.binary, self.work, port, compress(rules))
        self.prom.start(targets)
        prom = self.prom
        prom.wait_for(lambda: prom.scalar("count(up == 1)") == len(targets), 30,
                      "Prometheus did not scrape the peer and the validator")  # fmt: skip
        return prom

    # -- the run ----------------------------------------------------------------------

    def run(self) -> bool:
        c = self.console
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self._log_validator()
        c.print(
            "[bold]errclass demo[/]: the seed's catch-up incident on loopback, before and after"
        )
        c.print(f"Time runs {SCALE}x faster: 1 s here stands for 1 min. Prometheus scrapes and "
                f"evaluates every 1 s; the rules are errclass's shipped render with every window, "
                f"for: and interval divided by {SCALE} (5m -> 5s, 1h -> 60s, for: 2m -> 2s); the "
                f"guard counts failures in a window, so it stays as shipped.")  # fmt: skip
        peer = self._start_peer()
        validator_target = self._start_validator_metrics()
        prom = self._start_prometheus({"asset": peer, "block_validator": validator_target})
        info = prom.buildinfo()
        c.print(f"asset peer http://{peer} (uvicorn, pid {self.peer.pid if self.peer else '?'}); "
                f"Prometheus {info.get('version')} at {prom.url} (pid "
                f"{prom.proc.pid if prom.proc else '?'})")  # fmt: skip
        validator = Validator(f"http://{peer}")
        self.results.update(
            scale=SCALE, prometheus={"url": prom.url, "version": info.get("version")},
            started=time.time(), segments=[],
        )  # fmt: skip
        asyncio.run(self._play(prom, validator, peer))
        self._read_back(prom)
        return self._finish()

    async def _play(self, prom: Prometheus, validator: Validator, peer: str) -> None:
        import httpx
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        t = await asyncio.to_thread(self._settle, prom, time.time())
        durations: dict[str, float] = {}
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=self.console, transient=False,
        ) as progress:  # fmt: skip
            for seg in SEGMENTS:
                min_s = max(seg.min_s, durations.get("producer_fixed", 0.0)) if (
                    seg.key == "both_fixed") else seg.min_s  # fmt: skip
                if seg.fault:
                    httpx.post(f"http://{peer}/fault?on=1", timeout=5)
                task = progress.add_task(seg.title, total=None)
                t0 = t
                started = time.monotonic()
                end_alerts = await self._segment(
                    prom, validator, seg, min_s, progress=progress, task=task
                )
                durations[seg.key] = time.monotonic() - started
                if seg.fault:
                    httpx.post(f"http://{peer}/fault?on=0", timeout=5)
                t = await asyncio.to_thread(self._settle, prom, time.time())
                progress.update(task, total=1, completed=1)
                self.results["segments"].append(
                    {"key": seg.key, "title": seg.title, "consumer": seg.consumer,
                     "producer": seg.producer, "expect": seg.expect, "t0": t0, "t1": t,
                     "alerts_at_end": end_alerts}
                )  # fmt: skip

    async def _segment(
        self, prom: Prometheus, validator: Validator, seg: Segment, min_s: float,
        *, progress: Any, task: Any,
    ) -> list[dict[str, Any]]:  # fmt: skip
        stop_event = asyncio.Event()
        runner = asyncio.create_task(validator.run(seg.route, seg.key, seg.fanout, stop_event))
        started, met_at = time.monotonic(), None
        mine: list[dict[str, Any]] = []
        base = dict(validator.live)
        try:
            while not runner.done():
                await asyncio.sleep(0.5)
                alerts = await asyncio.to_thread(prom.alerts)
                mine = [a for a in alerts if a["labels"].get("producer") in (seg.producer, None)]
                elapsed = time.monotonic() - started
                if met_at is None and _met(seg.until, mine):
                    met_at = elapsed
                progress.update(task, description=_progress_line(seg, validator.live, base, mine))
                done_waiting = met_at is not None and elapsed >= met_at + 1.5
                if elapsed >= seg.max_s or (elapsed >= min_s and (not seg.until or done_waiting)):
                    break
        finally:
            stop_event.set()
            await runner  # in-flight blocks finish
        return [
            {"alertname": a["labels"].get("alertname"), "state": a.get("state"),
             "labels": a["labels"], "annotations": a.get("annotations", {})}
            for a in mine
        ]  # fmt: skip

    def _settle(self, prom: Prometheus, since: float) -> float:
        """Wait until Prometheus scraped both targets after *since* and every stream's
        outcome is recorded; returns a time at which the segment's counts are final."""
        prom.wait_for(
            lambda: (prom.scalar("min(timestamp(up))") or 0) > since + 0.2
            and prom.scalar("max(asset_streams_unrecorded)") == 0,
            20, "the streams' outcomes were not all recorded",
        )  # fmt: skip
        return time.time()

    # -- reading back ------------------------------------------------------------------

    def _read_back(self, prom: Prometheus) -> None:
        for seg in self.results["segments"]:
            k, p = seg["key"], seg["producer"]
            queries = {name: q.format(p=p, k=k) for name, q in SNAPSHOTS.items()}
            seg["queries"] = queries
            seg["at_t0"] = {n: prom.query(q, seg["t0"]) for n, q in queries.items()}
            seg["at_t1"] = {n: prom.query(q, seg["t1"]) for n, q in queries.items()}
            lo, hi = seg["t0"], seg["t1"]
            seg["alerts"] = prom.query_range(ALERTS, lo, hi, 1)
            seg["rates"] = prom.query_range(RATES.format(p=p), lo, hi, 0.5)
            seg["cut_rate"] = prom.query_range(CUT_RATE.format(k=k), lo, hi, 0.5)

    def _finish(self) -> bool:
        from . import _report

        self.out.mkdir(parents=True, exist_ok=True)
        rows = [_report.summarize(seg) for seg in self.results["segments"]]
        self.results["table"] = rows
        checks = _report.expectations(rows)
        self.results["expectations"] = checks
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1) + "\n")
        html = self.out / "report.html"
        html.write_text(_report.html(self.results), encoding="utf-8")
        _report.print_table(self.console, rows, checks)
        self.console.print(f"\nreport:  {html}\nresults: {self.out / 'results.json'} "
                           "(the raw Prometheus API responses)")  # fmt: skip
        return all(c["ok"] for c in checks)

    def screenshot(self, png: Path) -> None:
        from ._report import SIZE, ScreenshotError, screenshot

        html = self.out / "report.html"
        if not html.exists():
            return
        try:
            screenshot(html, png, SIZE)
        except ScreenshotError as e:
            self.console.print(f"screenshot skipped: {e}")
        else:
            self.console.print(f"screenshot: {png}")


def _met(until: str, alerts: list[dict[str, Any]]) -> bool:
    firing = [a for a in alerts if a.get("state") == "firing"]
    if until == "page":
        return any(a["labels"].get("severity") in PAGING for a in firing)
    return any(str(a["labels"].get("alertname", "")).endswith(until) for a in firing)


def _progress_line(
    seg: Segment, live: dict[str, int], base: dict[str, int], alerts: list[dict[str, Any]]
) -> str:
    fetches = live["fetches"] - base["fetches"]
    cut = live["cut"] - base["cut"]
    states = ", ".join(sorted({f"{a['labels'].get('alertname')} {a.get('state')}" for a in alerts}))
    return (
        f"{seg.title:<18} fetches {fetches:>5}  cut by a sibling {cut:>5}  alerts: {states or '-'}"
    )
