"""Recording and alerting rules, and the four files users import them from:
a Prometheus rule file, a PrometheusRule resource, a Mimir/Cortex namespace file and
a Grafana-managed alerting provisioning file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ._config import BurnRate, Config, seconds
from ._queries import Queries, by, num


@dataclass
class Alert:
    name: str
    expr: str  # on recorded series
    inline_expr: str  # the same condition on the raw metric, for Grafana
    for_: str
    severity: str
    summary: str
    description: str  # `{value}` stands for the alert's value in either dialect
    labels: dict[str, str] = field(default_factory=dict)


def windows(cfg: Config) -> list[str]:
    """Every rate window any rule reads, shortest first."""
    ws = {cfg.slo.period, cfg.legacy_window, cfg.alerts.deadline.window}
    ws |= {cfg.alerts.client_gone.window}
    for b in cfg.burn_rates:
        ws |= {b.long, b.short}
    return sorted(ws, key=seconds)


def recording_rules(cfg: Config) -> list[dict[str, Any]]:
    q = Queries(cfg)
    rules: list[dict[str, Any]] = []
    for w in windows(cfg):
        rules.append({"record": q.rec_reason_rate(w), "expr": q.record_reason_rate(w)})
    for w in windows(cfg):
        rules.append({"record": q.rec_counted_rate(w), "expr": q.record_counted(w)})
        rules.append({"record": q.rec_error_ratio(w), "expr": q.record_error_ratio(w)})
    # Continuity across the split: what the old metric's write_failed would show,
    # under a new name (never recorded into the original metric name).
    rules.append({"record": q.rec_legacy_rate(), "expr": q.record_legacy_rate()})
    rules.append({"record": q.rec_legacy_ratio(), "expr": q.record_legacy_ratio()})
    return rules


def _who(cfg: Config) -> str:
    return "/".join(f"{{{{ $labels.{label} }}}}" for label in cfg.aggregation_labels)


def alerts(cfg: Config) -> list[Alert]:
    out: list[Alert] = []
    p, a = cfg.alerts.prefix, cfg.alerts
    excluded = ", ".join(cfg.excluded_reasons) or "nothing"
    errors = " and ".join(cfg.error_reasons)
    for b in cfg.burn_rates:
        out.append(_burn_alert(cfg, b, excluded))
    q, qi = Queries(cfg), Queries(cfg, inline=True)
    d = a.deadline

    def ratio_alert(
        qq: Queries, reason: str, window: str, threshold: float, of_counted: bool
    ) -> str:
        return (
            f"{qq.reason_ratio(window, reason, of_counted=of_counted)} > {num(threshold)}\n"
            f"and on ({by(cfg.aggregation_labels)})\n"
            f"{qq.enough_traffic(window, counted=of_counted)}"
        )

    out.append(
        Alert(
            name=f"{p}DeadlineExceededHigh",
            expr=ratio_alert(q, "deadline_exceeded", d.window, d.threshold, True),
            inline_expr=ratio_alert(qi, "deadline_exceeded", d.window, d.threshold, True),
            for_=d.for_,
            severity=d.severity,
            summary="Streams are running out of time.",
            description=(
                f"{_who(cfg)}: {{value}} of counted outcomes hit their deadline over the last "
                f"{d.window} (threshold {num(d.threshold * 100)}%)."
            ),
        )
    )
    c = a.client_gone
    out.append(
        Alert(
            name=f"{p}ClientGoneHigh",
            expr=ratio_alert(q, "client_gone", c.window, c.threshold, False),
            inline_expr=ratio_alert(qi, "client_gone", c.window, c.threshold, False),
            for_=c.for_,
            severity=c.severity,
            summary="Clients are walking away from streams (a cancel cascade or network trouble).",
            description=(
                f"{_who(cfg)}: {{value}} of all outcomes were client_gone over the last "
                f"{c.window} (threshold {num(c.threshold * 100)}%). Not a server fault: look "
                f"for consumers cancelling in-flight siblings, proxies or timeouts on the client "
                f"side. It is excluded from the error budget, so {errors} alerts stay quiet."
            ),
        )
    )
    absent = f"absent({q.selector()})"
    out.append(
        Alert(
            name=f"{p}OutcomesAbsent",
            expr=absent,
            inline_expr=absent,
            for_=a.absent.for_,
            severity=a.absent.severity,
            summary=f"{cfg.metric} has disappeared.",
            description=(
                f"No series of {q.selector()} for {a.absent.for_}: the producers are down, "
                "no longer scraped, or renamed the metric; every other alert is blind."
            ),
        )
    )
    return out


def _burn_alert(cfg: Config, b: BurnRate, excluded: str) -> Alert:
    long, short, factor = b.long, b.short, b.factor
    threshold = f"({num(factor)} * (1 - {num(cfg.slo.objective)}))"

    def expr(q: Queries) -> str:
        return (
            f"(\n  {q.error_ratio(long)} > {threshold}\nand on ({by(q.agg)})\n"
            f"  {q.error_ratio(short)} > {threshold}\n)\n"
            f"and on ({by(q.agg)})\n{q.enough_traffic(long)}"
        )

    return Alert(
        name=f"{cfg.alerts.prefix}ErrorBudgetBurn",
        expr=expr(Queries(cfg)),
        inline_expr=expr(Queries(cfg, inline=True)),
        for_=b.for_,
        severity=b.severity,
        summary="A streaming producer is burning its error budget.",
        description=(
            f"{_who(cfg)}: {{value}} of outcomes failed ({' or '.join(cfg.error_reasons)}) over "
            f"the last {long} and {short}, {num(factor)}x the rate the "
            f"{num(cfg.slo.objective * 100)}% objective allows over {cfg.slo.period} "
            f"({excluded} excluded from both sides)."
        ),
        labels={"long": long, "short": short},
    )


# -- the four formats ---------------------------------------------------------------------


def _runbook(cfg: Config, alert: str) -> str:
    return cfg.alerts.runbook_url.format(alert=alert, alert_lower=alert.lower(), name=cfg.name)


def prometheus_groups(cfg: Config) -> list[dict[str, Any]]:
    interval = {"interval": cfg.rule_interval} if cfg.rule_interval else {}
    rules = []
    for a in alerts(cfg):
        rule: dict[str, Any] = {"alert": a.name, "expr": a.expr}
        if a.for_ and seconds(a.for_) > 0:
            rule["for"] = a.for_
        rule["labels"] = {"severity": a.severity, **a.labels, **cfg.alerts.labels}
        rule["annotations"] = {
            "summary": a.summary,
            "description": a.description.replace("{value}", "{{ $value | humanizePercentage }}"),
            "runbook_url": _runbook(cfg, a.name),
        }
        rules.append(rule)
    return [
        {"name": f"{cfg.name}.rules", **interval, "rules": recording_rules(cfg)},
        {"name": f"{cfg.name}.alerts", **interval, "rules": rules},
    ]


def prometheus_file(cfg: Config) -> dict[str, Any]:
    return {"groups": prometheus_groups(cfg)}


def prometheus_rule(cfg: Config) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": cfg.name}
    if cfg.prometheus_rule.namespace:
        meta["namespace"] = cfg.prometheus_rule.namespace
    meta["labels"] = dict(cfg.prometheus_rule.labels)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta,
        "spec": {"groups": prometheus_groups(cfg)},
    }


def mimir_file(cfg: Config) -> dict[str, Any]:
    return {"namespace": cfg.mimir_namespace, "groups": prometheus_groups(cfg)}


def grafana_file(cfg: Config) -> dict[str, Any]:
    """Grafana-managed alerting provisioning: each alert queries the raw metric (no
    recording rules needed), A is the Prometheus condition, B fires when A has a value."""
    g = cfg.grafana_alerting
    rules = []
    for a in alerts(cfg):
        labels = {"severity": a.severity, **a.labels, **cfg.alerts.labels}
        key = a.name + "".join(f",{k}={v}" for k, v in sorted(labels.items()))
        uid = f"{cfg.name[:20]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        window = max(seconds(a.for_) if a.for_ else 0, 600)
        rules.append(
            {
                "uid": uid,
                "title": a.name,
                "condition": "B",
                "data": [
                    {
                        "refId": "A",
                        "relativeTimeRange": {"from": int(window), "to": 0},
                        "datasourceUid": g.datasource_uid,
                        "model": {
                            "refId": "A",
                            "expr": a.inline_expr,
                            "instant": True,
                            "range": False,
                            "intervalMs": 1000,
                            "maxDataPoints": 43200,
                        },
                    },
                    {
                        "refId": "B",
                        "relativeTimeRange": {"from": 0, "to": 0},
                        "datasourceUid": "__expr__",
                        "model": {
                            "refId": "B",
                            "type": "threshold",
                            "expression": "A",
                            "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
                        },
                    },
                ],
                # The condition returns series only while it holds: no data is fine.
                "noDataState": "OK",
                "execErrState": "Error",
                "for": a.for_,
                "labels": labels,
                "annotations": {
                    "summary": a.summary,
                    "description": a.description.replace(
                        "{value}", "{{ humanizePercentage $values.A.Value }}"
                    ),
                    "runbook_url": _runbook(cfg, a.name),
                },
                "isPaused": False,
            }
        )
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": g.org_id,
                "name": f"{cfg.name}.alerts",
                "folder": g.folder,
                "interval": g.interval,
                "rules": rules,
            }
        ],
    }
