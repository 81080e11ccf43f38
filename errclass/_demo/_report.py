"""The demo's table, expectations, HTML report (inline SVG, no script) and screenshot.

Every number comes from the raw Prometheus API responses the run stored."""

from __future__ import annotations

import html as _html
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._scenario import PAGING

SIZE = (1400, 880)  # the report's page, in CSS pixels (the screenshot's window)
COLORS = {
    "ok": "#2ca02c",
    "client_gone": "#1f77b4",
    "write_failed": "#d62728",
    "deadline_exceeded": "#ff7f0e",
}
CUT_COLOR = "#7f7f7f"
PENDING, FIRING = "#f0b429", "#7b1fa2"
REASONS = tuple(COLORS)
COLUMNS = (("before",), ("producer_fixed",), ("both_fixed", "disk_fault"))
CHART = (440, 270)  # width, height of each phase's chart
TIMELINE_H = 120
X0, GAP, CHART_TOP = 20, 460, 150
TIMELINE_TOP = CHART_TOP + CHART[1] + 10
PLOT = (48, 14, 12, 30)  # margins: left, top, right, bottom


# -- numbers ----------------------------------------------------------------------------


def by_label(response: dict[str, Any]) -> dict[str, float]:
    """An instant vector keyed by its one label's value ('' for a plain sum)."""
    out: dict[str, float] = {}
    for r in response["data"]["result"]:
        key = next(iter(r["metric"].values()), "")
        out[key] = float(r["value"][1])
    return out


def delta(seg: dict[str, Any], name: str) -> dict[str, float]:
    before, after = by_label(seg["at_t0"][name]), by_label(seg["at_t1"][name])
    return {k: round(v - before.get(k, 0.0), 6) for k, v in after.items()}


def alert_states(seg: dict[str, Any]) -> dict[str, set[str]]:
    """{alert display name: states seen} for this segment's producer (or none)."""
    seen: dict[str, set[str]] = {}
    for series in seg["alerts"]["data"]["result"]:
        m = series["metric"]
        if m.get("producer", seg["producer"]) != seg["producer"]:
            continue
        seen.setdefault(alert_name(m), set()).add(m.get("alertstate", ""))
    return seen


def alert_name(labels: dict[str, str]) -> str:
    name = labels.get("alertname", "?")
    windows = f" {labels['long']}/{labels['short']}" if "long" in labels else ""
    return f"{name}{windows} ({labels.get('severity', '-')})"


def summarize(seg: dict[str, Any]) -> dict[str, Any]:
    outcomes = delta(seg, "outcomes")
    streams = sum(outcomes.values())
    lines, fetches = delta(seg, "log_lines"), delta(seg, "fetches")
    states = alert_states(seg)
    firing = sorted(n for n, s in states.items() if "firing" in s)
    return {
        "key": seg["key"],
        "title": seg["title"],
        "streams": int(streams),
        "reasons": {r: int(outcomes.get(r, 0)) for r in REASONS},
        "write_failed_share": outcomes.get("write_failed", 0) / streams if streams else 0.0,
        "cut_by_sibling": int(fetches.get("cut_by_sibling", 0)),
        "fetches": {k: int(v) for k, v in fetches.items()},
        "discarded_bytes": int(delta(seg, "discarded_bytes").get("", 0)),
        "warn_lines": int(lines.get("WARNING", 0)),
        "debug_lines": int(lines.get("DEBUG", 0)),
        "fanout": {k: int(v) for k, v in delta(seg, "fanout").items()},
        "pending": sorted(n for n, s in states.items() if "pending" in s and n not in firing),
        "firing": firing,
        "pages": any(n.endswith(tuple(f"({p})" for p in PAGING)) for n in firing),
        "seconds": round(seg["t1"] - seg["t0"], 1),
        "notes": [
            f"{a['alertname']}: {a['annotations'].get('description', '')}"
            for a in seg.get("alerts_at_end", [])
            if a["state"] == "firing"
        ],
    }


def expectations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = {row["key"]: row for row in rows}
    gone_fired = any("ClientGoneHigh" in n for n in r["producer_fixed"]["firing"])
    quiet = r["both_fixed"]
    return [
        {"phase": "1", "ok": r["before"]["pages"],
         "text": "before: pages, falsely (every cut stream counted write_failed, no server fault)"},
        {"phase": "2", "ok": not r["producer_fixed"]["pages"] and gone_fired,
         "text": "producer fixed: no page; the client_gone symptom alert fires (the consumer)"},
        {"phase": "3", "ok": quiet["cut_by_sibling"] == 0 and not quiet["firing"]
         and not quiet["pending"],
         "text": "both fixed: no stream cut by a sibling, no alert pending or firing"},
        {"phase": "3b", "ok": r["disk_fault"]["pages"],
         "text": "the injected disk fault (/dev/full) pages"},
    ]  # fmt: skip


def _bytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            row["title"],
            f"{row['streams']:,}",
            f"{row['cut_by_sibling']:,}",
            _bytes(row["discarded_bytes"]),
            f"{row['write_failed_share']:.0%}",
            f"{row['reasons']['client_gone']:,}",
            f"{row['warn_lines']:,}",
            ", ".join(_short(n) for n in row["pending"]) or "-",
            ", ".join(_short(n) for n in row["firing"]) or "-",
        ]
        for row in rows
    ]


_WIDE = 150  # columns: enough for the alert lists inside the table
HEADERS = ["phase", "streams", "cut by a sibling", "work thrown away",
           "write_failed", "client_gone", "WARN lines", "pending", "firing"]  # fmt: skip


def _short(name: str) -> str:
    return name.removeprefix("Errclass")


def print_table(console: Any, rows: list[dict[str, Any]], checks: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title="The seed's incident, per phase (every number read from Prometheus)")
    cells = table_rows(rows)
    # A narrow terminal gets the alerts below the numbers: nine columns do not fit
    # in 80, and rich would shrink the numbers to "1…".
    inline = console.width >= _WIDE
    headers = HEADERS if inline else HEADERS[:-2]
    for h in headers:
        alerts = h in ("pending", "firing")
        t.add_column(
            h,
            justify="left" if alerts or h == "phase" else "right",
            no_wrap=h == "phase",
            overflow="fold",  # a long header breaks rather than end in "…"
            ratio=1 if alerts else None,
        )
    for line in cells:
        t.add_row(*line[: len(headers)])
    console.print(t)
    if not inline:
        for line in cells:
            console.print(f"{line[0]}: pending {line[-2]}; firing {line[-1]}")
    for row in rows:
        for note in row["notes"]:
            if "ClientGoneHigh" in note:
                console.print(f"{row['title']}: {note}")
    for c in checks:
        mark = "[green]yes[/]" if c["ok"] else "[red]NO[/]"
        console.print(f"  {mark}  {c['text']}")


# -- the picture ------------------------------------------------------------------------


def _series(segs: Iterable[dict[str, Any]], field: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for seg in segs:
        for s in seg[field]["data"]["result"]:
            key = s["metric"].get("reason", "cut")
            out.setdefault(key, []).extend((float(t), float(v)) for t, v in s["values"])
    return out


def _ticks(top: float) -> list[float]:
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000) if top / s <= 5)
    return [i * step for i in range(int(top // step) + 1)]


def _chart(i: int, segs: list[dict[str, Any]]) -> str:
    w, h = CHART
    left, top, right, bottom = PLOT
    pw, ph = w - left - right, h - top - bottom
    t0, t1 = segs[0]["t0"], segs[-1]["t1"]
    rates, cut = _series(segs, "rates"), _series(segs, "cut_rate")
    peak = max([v for pts in (*rates.values(), *cut.values()) for _, v in pts] + [1.0]) * 1.1

    def xy(t: float, v: float) -> str:
        return f"{left + (t - t0) / (t1 - t0) * pw:.1f},{top + ph - v / peak * ph:.1f}"

    parts = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfbfb" '
             'stroke="#ccc"/>']  # fmt: skip
    for v in _ticks(peak):
        y = top + ph - v / peak * ph
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e4e4e4"/><text x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end" class="ax">{v:g}</text>')  # fmt: skip
    for s in range(0, int(t1 - t0) + 1, 5):
        x = left + s / (t1 - t0) * pw
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" '
                     f'class="ax">{s}s</text>')  # fmt: skip
    for seg in segs[1:]:  # the fault's start
        x = left + (seg["t0"] - t0) / (t1 - t0) * pw
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" '
            'stroke="#444" stroke-dasharray="3,3"/>'
            f'<text x="{x + 4:.1f}" y="{top + 12}" class="ax">disk fault on</text>'
        )
    for key, pts in [*((r, rates.get(r, [])) for r in REASONS), ("cut", cut.get("cut", []))]:
        if not pts or max(v for _, v in pts) <= 0:
            continue
        color = COLORS.get(key, CUT_COLOR)
        dash = ' stroke-dasharray="5,4"' if key == "cut" else ""
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2.5"{dash} '
                     f'points="{" ".join(xy(t, v) for t, v in pts)}"/>')  # fmt: skip
    parts.append(f'<text x="{left}" y="{top - 3}" class="ax">outcomes / s</text>')
    x = X0 + i * GAP
    return _svg(f"chart-{i + 1}", x, CHART_TOP, w, h, body="".join(parts))


def _timeline(i: int, segs: list[dict[str, Any]]) -> str:
    """One row per alert of this column's producer: pending and firing bars, on the
    chart's time axis."""
    w, h = CHART[0], TIMELINE_H
    left, _, right, _ = PLOT
    pw = w - left - right
    t0, t1 = segs[0]["t0"], segs[-1]["t1"]
    rows: dict[str, list[tuple[float, str]]] = {}
    for seg in segs:
        for s in seg["alerts"]["data"]["result"]:
            m = s["metric"]
            if m.get("producer", seg["producer"]) != seg["producer"]:
                continue
            rows.setdefault(alert_name(m), []).extend(
                (float(t), m.get("alertstate", "")) for t, _ in s["values"]
            )
    parts = ['<text x="0" y="12" class="hd">alerts (Prometheus ALERTS)</text>']
    if not rows:
        parts.append(f'<text x="{left}" y="34" class="ok">no alert pending or firing</text>')
    step = pw / max(t1 - t0, 1)
    for n, (name, samples) in enumerate(sorted(rows.items())[:4]):
        y = 20 + n * 30
        parts.append(
            f'<text x="{left}" y="{y + 10}" class="ax">{_html.escape(_short(name))}</text>'
        )
        for t, state in samples:
            x = left + (t - t0) / (t1 - t0) * pw
            color = FIRING if state == "firing" else PENDING
            parts.append(f'<rect x="{x:.1f}" y="{y + 13}" width="{step + 0.6:.1f}" height="12" '
                         f'fill="{color}"/>')  # fmt: skip
    return _svg(f"timeline-{i + 1}", X0 + i * GAP, TIMELINE_TOP, w, h, body="".join(parts))


def _svg(ident: str, x: int, y: int, w: int, h: int, *, body: str) -> str:
    return (f'<svg id="{ident}" class="box" data-box="{x} {y} {w} {h}" width="{w}" '
            f'height="{h}" style="left:{x}px;top:{y}px" xmlns="http://www.w3.org/2000/svg">'
            f"{body}</svg>")  # fmt: skip


def _legend() -> str:
    items = [*COLORS.items(), ("cut by a sibling (consumer)", CUT_COLOR)]
    spans = "".join(f'<span><i style="background:{c}"></i>{_html.escape(n)}</span>'
                    for n, c in items)  # fmt: skip
    spans += f'<span><i style="background:{PENDING}"></i>pending</span>'
    spans += f'<span><i style="background:{FIRING}"></i>firing</span>'
    return f'<div class="legend" style="top:{CHART_TOP - 30}px">{spans}</div>'


def html(results: dict[str, Any]) -> str:
    segs = {s["key"]: s for s in results["segments"]}
    rows = {r["key"]: r for r in results["table"]}
    blocks = []
    for i, keys in enumerate(COLUMNS):
        col = [segs[k] for k in keys]
        head = " / ".join(_html.escape(f"{s['title']}: {s['consumer']}") for s in col)
        blocks.append(f'<div class="col" style="left:{X0 + i * GAP}px;top:70px;'
                      f'width:{CHART[0]}px">{head}</div>')  # fmt: skip
        blocks.append(_chart(i, col))
        blocks.append(_timeline(i, col))
    cells = "".join(f"<th>{_html.escape(h)}</th>" for h in HEADERS)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html.escape(c)}</td>" for c in r) + "</tr>"
        for r in table_rows(list(rows.values()))
    )
    checks = "".join(
        f"<li>{'&#10003;' if c['ok'] else '&#10007;'} {_html.escape(c['text'])}</li>"
        for c in results["expectations"]
    )
    notes = "".join(
        f"<p><b>{_html.escape(r['title'])}</b>: {_html.escape(n)}</p>"
        for r in rows.values()
        for n in r["notes"]
        if "ClientGoneHigh" in n
    )
    table_top = TIMELINE_TOP + TIMELINE_H + 10
    scale = results["scale"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>errclass demo: the seed's catch-up incident</title>
<style>
body {{ margin:0; width:{SIZE[0]}px; height:{SIZE[1]}px; position:relative; background:#fff;
  font:13px "DejaVu Sans", Arial, sans-serif; color:#222 }}
.box, .col, .legend, .tbl, .top {{ position:absolute }}
.top {{ left:{X0}px; top:10px; width:{SIZE[0] - 2 * X0}px }}
h1 {{ font-size:18px; margin:0 0 4px 0 }}
.col {{ font-weight:bold; font-size:12px; height:44px }}
.ax {{ font-size:10px; fill:#555 }} .hd {{ font-size:11px; font-weight:bold }}
.ok {{ font-size:12px; fill:#2ca02c }}
.legend {{ left:{X0}px }} .legend span {{ margin-right:16px; font-size:12px }}
.legend i {{ display:inline-block; width:14px; height:4px; margin:0 5px 3px 0 }}
.tbl {{ left:{X0}px; top:{table_top}px; width:{SIZE[0] - 2 * X0}px }}
table {{ border-collapse:collapse; font-size:12px }}
td, th {{ border:1px solid #ccc; padding:3px 7px; text-align:right }}
td:first-child, th:first-child, td:nth-last-child(-n+2), th:nth-last-child(-n+2) {{
  text-align:left }}
p {{ margin:4px 0; max-width:1100px }}
ul {{ margin:6px 0; padding-left:18px }}
</style></head>
<body data-size="{SIZE[0]} {SIZE[1]}">
<div class="top"><h1>errclass demo: the seed's catch-up incident, before and after</h1>
A block validator fetches each block's 8 subtrees in parallel from an asset peer (uvicorn);
one fetch per block fails with a 500. Outcome rates by reason, from a real Prometheus
{_html.escape(str(results["prometheus"]["version"]))}. Time runs {scale}x faster
(1 s stands for 1 min): 1 s scrape and evaluation, the shipped rules' windows and
<code>for:</code> divided by {scale}.</div>
{_legend()}
{"".join(blocks)}
<div class="tbl"><table><tr>{cells}</tr>{body}</table><ul>{checks}</ul>{notes}</div>
</body></html>
"""


# -- the screenshot ---------------------------------------------------------------------


class ScreenshotError(Exception):
    pass


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(page: Path, png: Path, size: tuple[int, int], timeout: float = 90.0) -> None:
    """Render *page* in headless Chromium into *png* at *size* CSS pixels (scale 1)."""
    binary = chromium()
    if binary is None:
        raise ScreenshotError("chromium is not installed (Debian: apt-get install chromium)")
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="errclass-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--user-data-dir={profile}",
               f"--window-size={size[0]},{size[1]}", f"--screenshot={png}",
               page.resolve().as_uri()]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group, started above
            proc.communicate()
            raise ScreenshotError(f"chromium took longer than {timeout:g}s") from None
    if proc.returncode != 0 or not png.exists():
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise ScreenshotError(f"chromium exited with {proc.returncode}: {' | '.join(tail)}")
