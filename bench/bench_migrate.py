"""Benchmark: ``errclass migrate`` on a 1,000-panel dashboard, a 1,000-rule file and a
real corpus (Debian's ceph dashboards and alert rules, when installed), against parsing
the same expressions once with promql-parser (target: at most 2x).

Migration here is everything but the disk and the diff: reading the JSON/YAML, locating
every expression, parsing it, planning, editing, re-parsing the edit and comparing the
trees, and reading every edited string back as JSON/YAML. Half of the expressions use the
migrated metric, a quarter change. "parse before+after" parses each expression once and
each edited one once more, as written (an edit that writes a regex matcher is verified
through its plain twin, without the regex compiles this column pays: so migration can
come below twice it). "read + parses": reading each file (the document and its sites)
and parsing each expression that names the metric once and each edit's twin once more,
in place, and nothing else: about what no planning, editing or checking goes below.

The real corpus is planned with a regex ``--metric 'ceph_.*'``, so that every one of its
expressions is parsed; its baseline parses each once after masking Grafana variables
(``$job``, ``[$__rate_interval]``), without which they do not parse at all. The cyclic
garbage collector is paused around planning, as the command does. Each round is one run:
a new selection and memo, so nothing planned in one round is reused in the next (within
a round, an expression met again is planned once, as in the command)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

M = "stream_outcomes_total"
CEPH = (Path("/etc/grafana/dashboards/ceph-dashboard"), Path("/etc/prometheus/ceph"))
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


def _ceph() -> list[tuple[str, str]]:
    """(kind, text) of every file of the real corpus; [] when it is not installed."""
    out = []
    for root in CEPH:
        for path in sorted(root.glob("*")) if root.is_dir() else []:
            kind = {".json": "json", ".yml": "yaml", ".yaml": "yaml"}.get(path.suffix)
            if kind:
                out.append((kind, path.read_text()))
    return out


def main() -> None:
    import promql_parser

    from errclass.migrate._cli import collector_paused
    from errclass.migrate._documents import load
    from errclass.migrate._expr import Memo
    from errclass.migrate._files import FileResult, plan_text
    from errclass.migrate._formats import extract
    from errclass.migrate._semantics import Selection
    from errclass.migrate._tree import parse as masked_parse

    exprs = expressions()
    corpora: dict[str, tuple[list[tuple[str, str]], str, Callable[[str], object]]] = {
        "1,000-panel dashboard (JSON)": ([("json", dashboard(exprs))], M, promql_parser.parse),
        "1,000-rule file (YAML)": ([("yaml", rule_file(exprs))], M, promql_parser.parse),
    }
    ceph = _ceph()
    if ceph:
        corpora[f"ceph dashboards and rules ({len(ceph)} files)"] = (ceph, "ceph_.*", masked_parse)
    print(
        "| input | mode | parse only (ms) | migrate (ms) | ratio "
        "| changed | parse before+after (ms) | ratio to that | read + parses, to parse only |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, (files, metric, parse_one) in corpora.items():
        sites = [s.expr for k, t in files for s in extract(load(t, k)).sites if s.expr]
        sites = [e for e in sites if e.strip()]

        def parse(exprs: list[str], parse_one: Callable[[str], object] = parse_one) -> None:
            for e in exprs:
                try:
                    parse_one(e)
                except ValueError:
                    pass

        for mode in ("preserve", "split"):

            def migrate(
                files: list[tuple[str, str]] = files, metric: str = metric, mode: str = mode
            ) -> list[FileResult]:
                # one selection and memo per round, as one command run has: nothing
                # remembered (decisions, expressions met before) carries over to the next
                sel = Selection((metric,), mode=mode)
                memo: Memo = {}
                with collector_paused():
                    return [plan_text(t, k, sel, FileResult(Path("bench")), memo) for k, t in files]

            # the floor of a verified edit: the edited text must be parsed as well
            edited = [r.new_text for f in migrate() for _, r in f.sites if r.changed]
            # as verified: regex operators made plain (the twin; any regex matcher of the
            # expression's own made plain too, which only lowers this floor)
            twins = [e.replace("=~", "=").replace("!~", "!=") for e in edited]

            def read_and_parse(
                files: list[tuple[str, str]] = files,
                metric: str = metric,
                twins: list[str] = twins,
                mode: str = mode,
            ) -> None:
                sel = Selection((metric,), mode=mode)
                seen: set[str] = set()
                with collector_paused():
                    for kind, text in files:
                        for site in extract(load(text, kind)).sites:
                            e = site.expr
                            if e and e.strip() and e not in seen and sel.mentions(e):
                                seen.add(e)  # an expression met again: planned once
                                parse([e], masked_parse)
                    parse(twins, masked_parse)

            base, took, floor, reading = _best(
                lambda sites=sites: parse(sites),
                migrate,
                lambda both=sites + edited: parse(both),
                read_and_parse,
            )
            print(
                f"| {label} | {mode} | {base * 1e3:.1f} | {took * 1e3:.1f} "
                f"| {took / base:.2f}x | {len(edited)} | {floor * 1e3:.1f} | {took / floor:.2f}x "
                f"| {reading / base:.2f}x |"
            )


if __name__ == "__main__":
    main()
