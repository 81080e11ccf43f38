"""Benchmark: ``errclass migrate`` on a 1,000-panel dashboard and a 1,000-rule file,
against parsing the same expressions with promql-parser (target: at most 3x).

Migration here is everything but the disk and the diff: reading the JSON/YAML, locating
every expression, parsing it, planning, editing, re-parsing the edit and comparing the
trees, and reading every edited string back as JSON/YAML. Half of the expressions use the migrated metric, a quarter
change. Every edit is verified by parsing the edited expression, and promql-parser
compiles regex matchers while parsing, so "parse before+after" (each expression once,
each edited one once more) is the floor of any verified migration; it is shown too.
The migration runs with the garbage collector paused, as the command runs it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

M = "stream_outcomes_total"
N = 1000
REPEAT = 25

_EXPRS = [
    # on the migrated metric
    f'sum by (job, instance) (rate({M}{{job="api-{{i}}", reason="write_failed"}}[5m]))',
    f'sum(rate({M}{{job="api-{{i}}", reason!="ok"}}[5m])) / sum(rate({M}{{job="api-{{i}}"}}[5m]))',
    # other metrics
    'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="api-{i}"}[5m])))',
    'sum by (code) (rate(http_requests_total{job="api-{i}", code=~"5.."}[5m])) > 0',
]


def expressions() -> list[str]:
    return [_EXPRS[i % len(_EXPRS)].replace("{i}", str(i)) for i in range(N)]


def dashboard(exprs: list[str]) -> str:
    panels = [
        {
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": "reqps"}, "overrides": []},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "id": i + 1,
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [{"expr": e, "legendFormat": "{{job}}", "refId": "A"}],
            "title": f"Panel {i}",
            "type": "timeseries",
        }
        for i, e in enumerate(exprs)
    ]
    return json.dumps(
        {"panels": panels, "schemaVersion": 39, "title": "big", "uid": "big"}, indent=2
    )


def rule_file(exprs: list[str]) -> str:
    lines = ["# generated for the benchmark", "groups:", "  - name: big", "    rules:"]
    for i, e in enumerate(exprs):
        if i % 2:
            lines += [f"      - record: job:bench_{i}:rate5m", f"        expr: {json.dumps(e)}"]
        else:
            lines += [
                f"      - alert: Bench{i}",
                "        expr: |",
                f"          {e} > 0.5" if "/" in e or ">" not in e else f"          {e}",
                "        for: 5m",
                "        labels:",
                "          severity: warning",
                "        annotations:",
                f"          summary: bench alert {i}",
            ]
    return "\n".join(lines) + "\n"


def _best(*fns: Callable[[], object]) -> list[float]:
    """Least CPU time of each function over a few rounds, the functions taking turns in
    each round (CPU time: other processes add noise to wall time, not to this; taking
    turns: a slow spell of this shared machine hits the baseline and the migration
    alike instead of one of them)."""
    best = [float("inf")] * len(fns)
    for _ in range(REPEAT):
        for k, fn in enumerate(fns):
            t0 = time.process_time()
            fn()
            best[k] = min(best[k], time.process_time() - t0)
    return best


def main() -> None:
    import promql_parser

    from errclass.migrate._cli import collector_paused
    from errclass.migrate._documents import load
    from errclass.migrate._files import FileResult, plan_text
    from errclass.migrate._formats import extract
    from errclass.migrate._semantics import Selection

    exprs = expressions()
    files = {"1,000-panel dashboard (JSON)": ("json", dashboard(exprs))}
    files["1,000-rule file (YAML)"] = ("yaml", rule_file(exprs))
    print(
        "| input | mode | parse only (ms) | migrate (ms) | ratio "
        "| changed | parse before+after (ms) | ratio to that |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, (kind, text) in files.items():
        sites = [s.expr or "" for s in extract(load(text, kind)).sites]
        assert len(sites) == N

        def parse(exprs: list[str]) -> None:
            for e in exprs:
                promql_parser.parse(e)

        for mode in ("preserve", "split"):
            sel = Selection((M,), mode=mode)

            def migrate(kind: str = kind, text: str = text, sel: Selection = sel) -> FileResult:
                with collector_paused():
                    return plan_text(text, kind, sel, FileResult(Path("bench")))

            # the floor of a verified edit: the edited text must be parsed as well
            edited = [r.new_text for _, r in migrate().sites if r.changed]
            base, took, floor = _best(
                lambda sites=sites: parse(sites),
                migrate,
                lambda both=sites + edited: parse(both),
            )
            print(
                f"| {label} | {mode} | {base * 1e3:.1f} | {took * 1e3:.1f} "
                f"| {took / base:.2f}x | {len(edited)} | {floor * 1e3:.1f} | {took / floor:.2f}x |"
            )


if __name__ == "__main__":
    main()
