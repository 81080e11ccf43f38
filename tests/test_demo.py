"""`make demo`: the seed's catch-up incident end to end, on loopback, with a real Prometheus.

One run of the demo (a subprocess, bounded) per module. Every number asserted
here is read from the raw Prometheus HTTP API responses the demo stored in
results.json (instant vectors at each phase's start and end, ALERTS ranges),
and parsed here, not from the demo's own table. Producer-side numbers (the
peer's series) are cross-checked against consumer-side ones (the validator's
series), which come from a different scrape target.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_tool

pytestmark = pytest.mark.slow
PAGING = {"critical"}


def demo(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "errclass", "demo", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """One demo run, shared by the pytest-xdist workers (a lock in their common
    temp folder: the first worker runs it, the others read its results)."""
    require_tool("prometheus")
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this session's
    out, stdout = shared / "errclass-demo", shared / "errclass-demo.stdout"
    with (shared / "errclass-demo.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not stdout.exists():
            proc = subprocess.run(demo(out), capture_output=True, text=True, timeout=300,
                                  check=False)  # fmt: skip
            assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
            assert not leftovers(out), "the demo left processes running"
            stdout.write_text(proc.stdout)
    return out, stdout.read_text(), json.loads((out / "results.json").read_text())


# -- reading the raw Prometheus responses --------------------------------------------------


def vector(response: dict[str, Any]) -> dict[str, float]:
    assert response["status"] == "success"
    assert response["data"]["resultType"] == "vector"
    return {
        next(iter(r["metric"].values()), ""): float(r["value"][1])
        for r in response["data"]["result"]
    }


def counts(seg: dict[str, Any], name: str) -> dict[str, float]:
    """What a counter query rose by over the phase, per label value."""
    start, end = vector(seg["at_t0"][name]), vector(seg["at_t1"][name])
    return {k: v - start.get(k, 0.0) for k, v in end.items()}


def alerts(seg: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """{(alertname, severity): states} over the phase, for its producer."""
    rng = seg["alerts"]
    assert rng["status"] == "success" and rng["data"]["resultType"] == "matrix"
    out: dict[tuple[str, str], set[str]] = {}
    for series in rng["data"]["result"]:
        m = series["metric"]
        assert m["__name__"] == "ALERTS"
        if m.get("producer", seg["producer"]) == seg["producer"]:
            out.setdefault((m["alertname"], m.get("severity", "")), set()).add(m["alertstate"])
    return out


def firing(seg: dict[str, Any]) -> set[tuple[str, str]]:
    return {k for k, states in alerts(seg).items() if "firing" in states}


def pages(seg: dict[str, Any]) -> bool:
    return any(sev in PAGING for _, sev in firing(seg))


def phase(results: dict[str, Any], key: str) -> dict[str, Any]:
    (seg,) = [s for s in results["segments"] if s["key"] == key]
    assert seg["t1"] > seg["t0"]
    return seg


# -- each phase ----------------------------------------------------------------------------


def cascade(results: dict[str, Any], key: str, counted_as: str) -> tuple[dict[str, Any], float]:
    """The checks of a phase where the consumer cascades: its segment, and how many
    streams were counted as *counted_as*, the reason every cut one gets."""
    seg = phase(results, key)
    outcomes, fetches = counts(seg, "outcomes"), counts(seg, "fetches")
    streams, n = sum(outcomes.values()), outcomes[counted_as]
    assert streams >= 300, outcomes
    others = [r for r in ("client_gone", "write_failed", "deadline_exceeded") if r != counted_as]
    assert outcomes[others[0]] == outcomes[others[1]] == 0  # never split
    assert n / streams > 0.5, outcomes  # the seed's "~98% failures"
    # Every such stream is one the validator cut because a sibling failed.
    cut = fetches["cut_by_sibling"]
    assert 0.5 * cut <= n <= cut, (outcomes, fetches)
    assert counts(seg, "discarded_bytes")[""] > 0  # paid-for work thrown away
    return seg, n


def test_phase1_before_cascade_is_counted_write_failed_and_pages(run: Any) -> None:
    seg, wf = cascade(run[2], "before", "write_failed")
    assert counts(seg, "log_lines")["WARNING"] == wf  # one WARN line per false failure
    assert pages(seg), alerts(seg)  # a false page: there is no server fault


def test_phase2_producer_fixed_no_page_client_gone_alert_points_at_consumer(run: Any) -> None:
    seg, gone = cascade(run[2], "producer_fixed", "client_gone")  # the consumer still cascades
    lines = counts(seg, "log_lines")
    assert lines["WARNING"] == 0 and lines["DEBUG"] == gone  # client_gone logs at DEBUG
    assert not pages(seg), alerts(seg)
    assert ("ErrclassClientGoneHigh", "warning") in firing(seg), alerts(seg)
    (note,) = [a for a in seg["alerts_at_end"] if a["alertname"] == "ErrclassClientGoneHigh"]
    assert (
        note["state"] == "firing" and "consumers cancelling" in note["annotations"]["description"]
    )


def test_phase3_both_fixed_cuts_nothing_and_nothing_fires(run: Any) -> None:
    seg = phase(run[2], "both_fixed")
    outcomes, fetches = counts(seg, "outcomes"), counts(seg, "fetches")
    fan, blocks = counts(seg, "fanout"), counts(seg, "blocks")
    # About 1,500 on a quiet machine; a loaded one ran it below 500. 300, as in phases 1-2.
    assert sum(outcomes.values()) >= 300, outcomes
    assert outcomes["client_gone"] == outcomes["write_failed"] == 0, outcomes
    assert fetches["cut_by_sibling"] == 0, fetches
    # Every stream the peer produced reached the validator whole (two different targets).
    assert outcomes["ok"] == fetches["ok"] == fan["ok"], (outcomes, fetches, fan)
    # The one poisoned fetch per block is the block's only failure (HTTP 500 -> write_failed).
    assert fan["write_failed"] == fetches["failed"] == blocks["failed"] > 0, (fan, blocks)
    assert counts(seg, "discarded_bytes")[""] == 0
    assert counts(seg, "log_lines")["WARNING"] == 0
    assert alerts(seg) == {}  # nothing pending, nothing firing


def test_phase3b_injected_disk_fault_pages(run: Any) -> None:
    seg = phase(run[2], "disk_fault")
    outcomes, fetches = counts(seg, "outcomes"), counts(seg, "fetches")
    assert outcomes["write_failed"] > 0 and outcomes["client_gone"] == 0, outcomes
    assert counts(seg, "log_lines")["WARNING"] == outcomes["write_failed"]
    assert fetches["cut_by_sibling"] == 0
    assert pages(seg), alerts(seg)
    assert ("ErrclassErrorBudgetBurn", "critical") in firing(seg)


def test_demo_prints_the_table_and_the_report_path(run: Any) -> None:
    out, stdout, results = run
    assert "Time runs 60x faster" in stdout
    for title in ("1. before", "2. producer fixed", "3. both fixed", "3b. + disk fault"):
        assert title in stdout
    assert f"report:  {out / 'report.html'}" in stdout
    assert results["scale"] == 60
    assert str(results["prometheus"]["version"]).startswith(("2.", "3."))


@pytest.mark.parametrize("width", [80, 120, 190])
def test_the_table_keeps_every_number_whole_at_any_width(width: int) -> None:
    from rich.console import Console

    from errclass._demo import _report

    burn = [f"ErrclassErrorBudgetBurn {w} (warning)" for w in ("1d/2h", "3d/6h", "6h/30m")]
    rows = [
        {"title": "1. before", "streams": 12345, "cut_by_sibling": 9876, "notes": [],
         "discarded_bytes": 3.2e8, "write_failed_share": 0.85, "reasons": {"client_gone": 0},
         "warn_lines": 9876, "pending": burn, "firing": ["ErrclassClientGoneHigh"]},
    ]  # fmt: skip
    console = Console(width=width, record=True, highlight=False)
    _report.print_table(console, rows, [])
    text = console.export_text()
    assert "…" not in text
    for cell in _report.table_rows(rows)[0]:
        for word in cell.split():  # an alert list may wrap between words
            assert word in text, (word, text)


# -- the picture ---------------------------------------------------------------------------

RED, BLUE, GREEN, PURPLE = (214, 39, 40), (31, 119, 180), (44, 160, 44), (123, 31, 162)


def test_report_charts_draw_in_headless_chromium(run: Any, tmp_path: Path) -> None:
    from PIL import Image

    chromium = require_tool("chromium")
    page = run[0] / "report.html"
    text = page.read_text()
    assert "<script" not in text and not re.search(r"""(src|href)=|url\(|@import""", text)
    w, h = (int(v) for v in re.search(r'data-size="(\d+) (\d+)"', text).groups())  # type: ignore[union-attr]
    png = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}",
         f"--window-size={w},{h}", f"--screenshot={png}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    img = Image.open(png).convert("RGB")
    assert img.size == (w, h)
    boxes = {
        m[0]: tuple(int(v) for v in m[1].split())
        for m in re.findall(r'<svg id="([a-z]+-\d)" class="box" data-box="([\d ]+)"', text)
    }
    assert len(boxes) == 6, boxes

    def pixels(name: str, color: tuple[int, int, int] | None = None) -> int:
        x, y, bw, bh = boxes[name]
        raw = img.crop((x, y, x + bw, y + bh)).tobytes()
        region = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
        if color is None:  # anything but the white page
            return sum(1 for p in region if min(p) < 235)
        return sum(1 for p in region if all(abs(a - b) < 40 for a, b in zip(p, color, strict=True)))

    for name, (_, _, bw, bh) in boxes.items():
        assert pixels(name) > 0.01 * bw * bh, name
    assert pixels("chart-1", RED) > 300  # phase 1: write_failed
    assert pixels("chart-2", BLUE) > 300  # phase 2: client_gone
    assert pixels("chart-3", GREEN) > 300 and pixels("chart-3", RED) > 60  # ok, then the fault
    for name in ("timeline-1", "timeline-2", "timeline-3"):
        assert pixels(name, PURPLE) > 40, name  # a firing bar under each phase


# -- errors and interruption ---------------------------------------------------------------


def leftovers(out: Path) -> list[str]:
    """Processes whose command line names *out* (the demo's Prometheus and peer do)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(out) in cmd and int(pid) != os.getpid():
            found.append(f"{pid}: {cmd}")
    return found


def test_missing_prometheus_says_how_to_install_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        demo(tmp_path, "--prometheus", str(tmp_path / "no-such-prometheus")),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "apt-get install prometheus" in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_busy_port_is_a_clear_error_and_leaves_nothing_running(tmp_path: Path) -> None:
    require_tool("prometheus")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            demo(tmp_path, "--prometheus-port", str(port)),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"port {port} on 127.0.0.1 is in use" in proc.stderr
    assert leftovers(tmp_path) == []  # the peer, already started, was stopped


def test_ctrl_c_stops_prometheus_and_the_peer(tmp_path: Path) -> None:
    require_tool("prometheus")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(demo(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # the line printed once Prometheus and the peer are up
            if line.startswith("asset peer") or time.monotonic() > deadline:
                break
        running = leftovers(tmp_path)
        assert any("prometheus" in c for c in running), running
        assert any("errclass._demo._peer" in c for c in running), running
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert leftovers(tmp_path) == []
