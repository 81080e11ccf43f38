"""The Grafana dashboard (classic JSON model) and its export-for-sharing variant."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ._config import Config
from ._queries import Consumer, Queries, by, num, string

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
# The Grafana release that writes each schemaVersion (its DashboardMigrator's latest):
# what `__requires` says, so an import into an older Grafana is not promised to work.
GRAFANA_FOR_SCHEMA = {39: "10.4.0"}
RATE = "$__rate_interval"


class _Panels:
    def __init__(self, cfg: Config) -> None:
        self.cfg, self.q = cfg, Queries(cfg)
        self.vars = ["job", "instance"] + ([cfg.producer_label] if cfg.producer_label else [])
        self.next_id = 1

    def filters(self, *, recorded: bool = False) -> list[str]:
        """The variables' matchers; recorded series keep only the aggregation labels."""
        names = [v for v in self.vars if not recorded or v in self.cfg.aggregation_labels]
        return [f"{v}=~{string('$' + v)}" for v in names]

    def rate(self, *matchers: str) -> str:
        return self.q.raw_rate(RATE, *self.filters(), *matchers)

    def reasons(self, reasons: list[str] | tuple[str, ...], *, negate: bool = False) -> str:
        return self.q.reason_matcher(list(reasons), negate=negate)

    def counted(self) -> str:
        ex = self.cfg.excluded_reasons
        return self.rate(self.reasons(ex, negate=True)) if ex else self.rate()

    def recorded(self, name: str) -> str:
        return self.q.selector(*self.filters(recorded=True), name=name)

    def legend(self, labels: list[str]) -> str:
        return " ".join(f"{{{{{label}}}}}" for label in labels)

    def panel(self, spec: Spec, grid: dict[str, int]) -> dict[str, Any]:
        kind, stack, thresholds, maximum = spec.kind, spec.stack, spec.thresholds, spec.maximum
        pid, self.next_id = self.next_id, self.next_id + 1
        defaults: dict[str, Any] = {"unit": spec.unit, "min": 0}
        if maximum is not None:
            defaults["max"] = maximum
        if kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 30 if stack else 10,
                "showPoints": "never",
                "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
            }
        steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        if kind == "stat":
            del defaults["min"]  # auto
            options: dict[str, Any] = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background",
                "graphMode": "none",
                "textMode": "value_and_name",
            }
        else:
            options = {
                "legend": {
                    "displayMode": "table",
                    "placement": "bottom",
                    "showLegend": True,
                    "calcs": ["mean", "max", "lastNotNull"],
                },
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        return {
            "id": pid,
            "type": kind,
            "title": spec.title,
            "description": spec.description,
            "datasource": dict(DATASOURCE),
            "gridPos": grid,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options,
            "targets": [
                {
                    "datasource": dict(DATASOURCE),
                    "refId": chr(ord("A") + i),
                    "expr": expr,
                    "legendFormat": legend,
                    "range": kind != "stat",
                    "instant": kind == "stat",
                }
                for i, (expr, legend) in enumerate(spec.targets)
            ],
        }


@dataclass(frozen=True)
class Spec:
    """One panel: what it shows; where it goes is computed (see ``layout``)."""

    title: str
    description: str
    unit: str
    targets: list[tuple[str, str]]  # (expr, legend)
    kind: str = "timeseries"
    stack: bool = False
    w: int = 12
    h: int = 8
    thresholds: list[tuple[str, float | None]] | None = None
    maximum: float | None = None


GRID_WIDTH = 24  # Grafana's grid


def layout(specs: list[Spec]) -> list[dict[str, int]]:
    """Grid positions: panels flow left to right and wrap to a new row when the next
    one does not fit; a row is as tall as its tallest panel."""
    out: list[dict[str, int]] = []
    x = y = row_h = 0
    for s in specs:
        if x + s.w > GRID_WIDTH:
            x, y, row_h = 0, y + row_h, 0
        out.append({"h": s.h, "w": s.w, "x": x, "y": y})
        x, row_h = x + s.w, max(row_h, s.h)
    return out


def panels(cfg: Config) -> list[dict[str, Any]]:
    p = _Panels(cfg)
    specs = _specs(p, cfg)
    return [p.panel(spec, grid) for spec, grid in zip(specs, layout(specs), strict=True)]


def _specs(p: _Panels, cfg: Config) -> list[Spec]:
    """The dashboard's panels, in reading order."""
    specs = _outcome_specs(p, cfg) + _slo_specs(p, cfg)
    return specs + (_consumer_specs(p, cfg) if cfg.consumer.enabled else [])


def _line(p: _Panels, matcher: str) -> str:
    # `or 0 * all`: a value whose series do not exist (a counter never incremented)
    # reads 0, not "No data".
    return f"(sum ({p.rate(matcher)}) or 0 * sum ({p.rate()}))"


def _outcome_specs(p: _Panels, cfg: Config) -> list[Spec]:
    q = p.q
    r = cfg.reason_label
    agg = list(cfg.aggregation_labels)
    excluded = ", ".join(cfg.excluded_reasons) or "nothing"
    errors = " + ".join(x for x in cfg.error_reasons if cfg.has(x))

    def ratio_of(numerator: str) -> str:
        # `or 0 * counted`: no error series at all reads 0, not "No data".
        counted = f"sum by ({by(agg)}) ({p.counted()})"
        return f"(sum by ({by(agg)}) ({numerator}) or 0 * {counted}) / {counted}"

    specs = [
        Spec(
            "Outcomes by reason",
            f"How streams ended, per second, stacked by {r}. client_gone is a client walking "
            "away; write_failed and deadline_exceeded are server-side.",
            "ops",
            [(f"sum by ({r}) ({p.rate()})", f"{{{{{r}}}}}")],
            stack=True,
        ),
        Spec(
            "client_gone vs write_failed",
            "The split side by side: before errclass both were counted as write_failed. A "
            "client_gone surge with flat write_failed is a cancel cascade or network trouble, "
            "not a server fault.",
            "ops",
            [
                (_line(p, p.reasons(["client_gone"])), "client_gone"),
                (_line(p, p.reasons(["write_failed"])), "write_failed"),
            ],
        ),
        Spec(
            "Error ratio (client_gone excluded)",
            f"({errors}) / all outcomes except {excluded}: {excluded} is out of both the "
            f"numerator and the denominator. The dashed line is the error budget "
            f"(1 - {num(cfg.slo.objective)}).",
            "percentunit",
            [(ratio_of(p.rate(p.reasons(cfg.error_reasons))), p.legend(agg))],
            thresholds=[("green", None), ("red", cfg.budget)],
        ),
    ]
    if cfg.has("deadline_exceeded"):
        specs.append(
            Spec(
                "Deadline ratio",
                f"deadline_exceeded / all outcomes except {excluded}: streams that ran out "
                "of time.",
                "percentunit",
                [(ratio_of(p.rate(p.reasons(["deadline_exceeded"]))), p.legend(agg))],
                thresholds=[("green", None), ("orange", cfg.alerts.deadline.threshold)],
            )
        )
    legacy = cfg.legacy_values()
    specs += [
        Spec(
            "Legacy-equivalent write_failed",
            f"What the metric showed before the split ({' + '.join(legacy)} all counted as "
            f"{cfg.legacy_from}), beside today's write_failed, for continuity across the "
            f"change. Recorded as {q.rec_legacy_rate()}.",
            "ops",
            [
                (_line(p, q.value_matcher(legacy)), "legacy write_failed (old metric)"),
                (_line(p, p.reasons(["write_failed"])), "write_failed (now)"),
            ],
        ),
        Spec(
            "Outcomes per instance",
            f"Outcomes per second by instance and {r}: one bad pod or one noisy client.",
            "ops",
            [(f"sum by (instance, {r}) ({p.rate()})", f"{{{{instance}}}} {{{{{r}}}}}")],
        ),
    ]
    return specs


def _slo_specs(p: _Panels, cfg: Config) -> list[Spec]:
    """Burn rate and budget from the recorded SLO meta series: no hard-coded budget."""
    q = p.q
    agg = list(cfg.aggregation_labels)
    return [
        Spec(
            "SLO burn rate",
            f"Error ratio over each alert window divided by the error budget (the recorded "
            f"{q.rec_budget()}, {num(cfg.budget)} here); 1 spends the budget exactly over the "
            "SLO period. Alerts fire when a long and a short window both exceed their factor. "
            "Needs the recording rules from alerts/.",
            "none",
            [
                (q.per_budget(p.recorded(q.rec_error_ratio(w))), f"{p.legend(agg)} {w}")
                for w in dict.fromkeys(b.long for b in cfg.burn_rates)
            ],
            w=16,
            thresholds=[("green", None), ("red", 1)],
        ),
        Spec(
            "Error budget remaining",
            f"The recorded {q.rec_budget_remaining()}: 1 - error ratio over "
            f"{cfg.slo.period} / error budget; below 0 the {num(cfg.slo.objective * 100)}% "
            "objective is missed. Needs the recording rules from alerts/.",
            "percentunit",
            [(p.recorded(q.rec_budget_remaining()), p.legend(agg))],
            kind="stat",
            w=8,
            thresholds=[("red", None), ("orange", 0), ("green", 0.25)],
        ),
    ]


def _consumer_specs(p: _Panels, cfg: Config) -> list[Spec]:
    """The consumer side beside the producers' client_gone: where a cascade starts."""
    c = cfg.consumer
    qc = Consumer(cfg)
    f, cancelled = c.fanout_label, qc.cancelled_matcher()
    filters = [m for m in p.filters() if m.split("=~")[0] in ("job", "instance")]

    def rate(*matchers: str) -> str:
        return f"rate({qc.selector(*filters, *matchers)}[{RATE}])"

    def per_fanout(*matchers: str) -> str:
        return f"(sum by ({f}) ({rate(*matchers)}) or 0 * sum by ({f}) ({rate()}))"

    failed = ['reason!="ok"', f'{c.cancelled_label}="false"']
    return [
        Spec(
            "Fan-out: failed and self-cancelled fetches",
            f"Per fan-out ({c.metric}): fetches that failed (the upstream dropped us, an error "
            f"status, a timeout) and fetches our own side cancelled ({c.cancelled_label}="
            '"true"), beside the producers\' client_gone. Self-cancelled fetches tracking '
            "client_gone is a cascade that starts on the consumer side.",
            "ops",
            [
                (per_fanout(*failed), f"{{{{{f}}}}} failed"),
                (per_fanout(cancelled), f"{{{{{f}}}}} cancelled by us"),
                (_line(p, p.reasons(["client_gone"])), "producers' client_gone"),
            ],
        ),
        Spec(
            "Fan-out: share cancelled by us",
            f"Per fan-out: the share of fetches cancelled by the consumer itself (alert "
            f"threshold {num(c.cancelled.threshold * 100)}%).",
            "percentunit",
            [(f"{per_fanout(cancelled)} / sum by ({f}) ({rate()})", f"{{{{{f}}}}}")],
            thresholds=[("green", None), ("orange", c.cancelled.threshold)],
        ),
    ]


def _variable(cfg: Config, name: str, parents: list[str]) -> dict[str, Any]:
    q = Queries(cfg)
    matchers = [f"{v}=~{string('$' + v)}" for v in parents]
    query = f"label_values({q.selector(*matchers)}, {name})"
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": dict(DATASOURCE),
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def dashboard(cfg: Config) -> dict[str, Any]:
    """The provisioning dashboard: every panel and target on ``${datasource}``."""
    p = _Panels(cfg)
    variables: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "regex": "",
            "refresh": 1,
            "hide": 0,
            "includeAll": False,
            "multi": False,
        }
    ]
    for i, name in enumerate(p.vars):
        variables.append(_variable(cfg, name, p.vars[:i]))
    return {
        "id": None,
        "uid": cfg.dashboard.uid,
        "title": cfg.dashboard.title,
        "description": f"Streaming outcomes of {cfg.metric} by reason, rendered by errclass.",
        "tags": list(cfg.dashboard.tags),
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "",
        "refresh": cfg.dashboard.refresh,
        "time": {"from": cfg.dashboard.time_from, "to": "now"},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels(cfg),
    }


def shared(cfg: Config) -> dict[str, Any]:
    """The export-for-sharing variant for the UI's Import: ``__inputs`` asks for a
    Prometheus data source, which becomes the ``datasource`` variable's default."""
    d = copy.deepcopy(dashboard(cfg))
    ds_var = d["templating"]["list"][0]
    ds_var["current"] = {"selected": True, "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"}
    kinds = sorted({p["type"] for p in d["panels"]})
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": f"The Prometheus that scrapes {cfg.metric}",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__elements": {},
        "__requires": [
            {
                "type": "grafana",
                "id": "grafana",
                "name": "Grafana",
                "version": GRAFANA_FOR_SCHEMA[SCHEMA_VERSION],
            },
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": k, "name": k.capitalize(), "version": ""} for k in kinds),
        ],
        **d,
    }
