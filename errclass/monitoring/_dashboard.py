"""The Grafana dashboard (classic JSON model) and its export-for-sharing variant."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ._config import Config
from ._queries import Queries, by, num, string

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
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
            defaults["min"] = None
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
    q = p.q
    r = cfg.reason_label
    agg = list(cfg.aggregation_labels)
    excluded = ", ".join(cfg.excluded_reasons) or "nothing"
    errors = " + ".join(cfg.error_reasons)

    def ratio_of(numerator: str) -> str:
        return f"sum by ({by(agg)}) ({numerator}) / sum by ({by(agg)}) ({p.counted()})"

    budget = num(cfg.budget)
    return [
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
                (f"sum ({p.rate(p.reasons(['client_gone']))})", "client_gone"),
                (f"sum ({p.rate(p.reasons(['write_failed']))})", "write_failed"),
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
        Spec(
            "Deadline ratio",
            f"deadline_exceeded / all outcomes except {excluded}: streams that ran out of time.",
            "percentunit",
            [(ratio_of(p.rate(p.reasons(["deadline_exceeded"]))), p.legend(agg))],
            thresholds=[("green", None), ("orange", cfg.alerts.deadline.threshold)],
        ),
        Spec(
            "Legacy-equivalent write_failed",
            f"What the metric showed before the split ({' + '.join(cfg.legacy_reasons)} all "
            "counted as write_failed), beside today's write_failed, for continuity across the "
            f"change. Recorded as {q.rec_legacy_rate()}.",
            "ops",
            [
                (
                    f"sum ({p.rate(p.reasons(cfg.legacy_reasons))})",
                    "legacy write_failed (old metric)",
                ),
                (f"sum ({p.rate(p.reasons(['write_failed']))})", "write_failed (now)"),
            ],
        ),
        Spec(
            "Outcomes per instance",
            f"Outcomes per second by instance and {r}: one bad pod or one noisy client.",
            "ops",
            [(f"sum by (instance, {r}) ({p.rate()})", f"{{{{instance}}}} {{{{{r}}}}}")],
        ),
        Spec(
            "SLO burn rate",
            f"Error ratio over each alert window divided by the error budget ({budget}); 1 "
            "spends the budget exactly over the SLO period. Alerts fire when a long and a short "
            "window both exceed their factor. Needs the recording rules from alerts/.",
            "none",
            [
                (f"{p.recorded(q.rec_error_ratio(w))} / {budget}", f"{p.legend(agg)} {w}")
                for w in dict.fromkeys(b.long for b in cfg.burn_rates)
            ],
            w=16,
            thresholds=[("green", None), ("red", 1)],
        ),
        Spec(
            "Error budget remaining",
            f"1 - error ratio over {cfg.slo.period} / error budget ({budget}); below 0 the "
            f"{num(cfg.slo.objective * 100)}% objective is missed. Needs the recording rules "
            "from alerts/.",
            "percentunit",
            [
                (
                    f"1 - {p.recorded(q.rec_error_ratio(cfg.slo.period))} / {budget}",
                    p.legend(agg),
                )
            ],
            kind="stat",
            w=8,
            thresholds=[("red", None), ("orange", 0), ("green", 0.25)],
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
        "schemaVersion": 39,
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
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": k, "name": k.capitalize(), "version": ""} for k in kinds),
        ],
        **d,
    }
