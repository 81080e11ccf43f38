"""Recording and alerting rules, and the four files users import them from:
a Prometheus rule file, a PrometheusRule resource, a Mimir/Cortex namespace file and
a Grafana-managed alerting provisioning file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ._config import BurnRate, Config, RatioAlert, seconds
from ._queries import Consumer, Queries, by, num

# Windows this long and longer are recorded in the slower group.
_LONG = 86400


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

    def title(self) -> str:
        """A title unique in its folder (Grafana requires it): the name, plus the
        labels that tell same-named alerts apart."""
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.labels.items())])


def windows(cfg: Config) -> list[str]:
    """Every rate window any rule reads, shortest first."""
    ws = {cfg.slo.period, cfg.legacy_window, cfg.alerts.client_gone.window}
    if cfg.has("deadline_exceeded"):
        ws.add(cfg.alerts.deadline.window)
    for b in cfg.burn_rates:
        ws |= {b.long, b.short}
    return sorted(ws, key=seconds)


def _window_rules(q: Queries, ws: list[str]) -> list[dict[str, Any]]:
    rules = [{"record": q.rec_reason_rate(w), "expr": q.record_reason_rate(w)} for w in ws]
    for w in ws:
        rules.append({"record": q.rec_counted_rate(w), "expr": q.record_counted(w)})
        rules.append({"record": q.rec_error_ratio(w), "expr": q.record_error_ratio(w)})
    return rules


def recording_groups(cfg: Config) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(group name suffix, interval, rules): the short windows at the global (or
    ``rule_interval``) interval; windows of 1d and longer, and the SLO meta series that
    read them, in a slower group (as Pyrra does), so a 30d rate is not recomputed
    every evaluation."""
    q = Queries(cfg)
    ws = windows(cfg)
    short = [w for w in ws if seconds(w) < _LONG]
    long = [w for w in ws if seconds(w) >= _LONG]
    fast = _window_rules(q, short)
    # Continuity across the split: what the old metric's write_failed would show,
    # under a new name (never recorded into the original metric name).
    fast.append({"record": q.rec_legacy_rate(), "expr": q.record_legacy_rate()})
    fast.append({"record": q.rec_legacy_ratio(), "expr": q.record_legacy_ratio()})
    slo = {"slo": cfg.name}
    slow = _window_rules(q, long)
    slow += [
        {
            "record": q.rec_objective(),
            "expr": f"vector({num(cfg.slo.objective)})",
            "labels": dict(slo),
        },
        {"record": q.rec_budget(), "expr": f"vector({num(cfg.budget)})", "labels": dict(slo)},
        {"record": q.rec_budget_remaining(), "expr": q.record_budget_remaining()},
    ]
    groups = [("rules", cfg.rule_interval, fast), ("rules.long", cfg.long_window_interval, slow)]
    if cfg.consumer.enabled:
        c = Consumer(cfg)
        w = cfg.consumer.cancelled.window
        groups[0][2].append({"record": c.rec_rate(w), "expr": c.record_rate(w)})
    return groups


def recording_rules(cfg: Config) -> list[dict[str, Any]]:
    return [r for _, _, rules in recording_groups(cfg) for r in rules]


def _who(labels: tuple[str, ...] | list[str]) -> str:
    return "/".join(f"{{{{ $labels.{label} }}}}" for label in labels)


def alerts(cfg: Config) -> list[Alert]:
    out = [_burn_alert(cfg, b) for b in cfg.burn_rates]
    if cfg.has("deadline_exceeded"):
        out.append(_deadline_alert(cfg))
    out += [_client_gone_alert(cfg), _absent_alert(cfg)]
    if cfg.consumer.enabled:
        out.append(_fanout_alert(cfg))
    return out


def _ratio_expr(
    cfg: Config, q: Queries, reason: str, alert: RatioAlert, *, of_counted: bool
) -> str:
    return (
        f"{q.reason_ratio(alert.window, reason, of_counted=of_counted)} > {num(alert.threshold)}\n"
        f"and on ({by(cfg.aggregation_labels)})\n"
        f"{q.enough_events(alert.window, [reason])}"
    )


def _deadline_alert(cfg: Config) -> Alert:
    d = cfg.alerts.deadline
    return Alert(
        name=f"{cfg.alerts.prefix}DeadlineExceededHigh",
        expr=_ratio_expr(cfg, Queries(cfg), "deadline_exceeded", d, of_counted=True),
        inline_expr=_ratio_expr(
            cfg, Queries(cfg, inline=True), "deadline_exceeded", d, of_counted=True
        ),
        for_=d.for_,
        severity=d.severity,
        summary="Streams are running out of time.",
        description=(
            f"{_who(cfg.aggregation_labels)}: {{value}} of counted outcomes hit their deadline "
            f"over the last {d.window} (threshold {num(d.threshold * 100)}%)."
        ),
    )


def _client_gone_alert(cfg: Config) -> Alert:
    c = cfg.alerts.client_gone
    errors = " and ".join(r for r in cfg.error_reasons if cfg.has(r))
    return Alert(
        name=f"{cfg.alerts.prefix}ClientGoneHigh",
        expr=_ratio_expr(cfg, Queries(cfg), "client_gone", c, of_counted=False),
        inline_expr=_ratio_expr(cfg, Queries(cfg, inline=True), "client_gone", c, of_counted=False),
        for_=c.for_,
        severity=c.severity,
        summary="Clients are walking away from streams (a cancel cascade or network trouble).",
        description=(
            f"{_who(cfg.aggregation_labels)}: {{value}} of all outcomes were client_gone over "
            f"the last {c.window} (threshold {num(c.threshold * 100)}%). Not a server fault: "
            f"look for consumers cancelling in-flight siblings, proxies or timeouts on the "
            f"client side. It is excluded from the error budget, so {errors} alerts stay quiet."
        ),
    )


def _absent_alert(cfg: Config) -> Alert:
    """Per aggregation (job, producer...): one that was there within ``lookback`` and is
    gone now is named; absent() covers the metric having no series at all."""
    q, a = Queries(cfg), cfg.alerts.absent
    agg = by(cfg.aggregation_labels)
    sel = q.selector()
    expr = (
        f"(\n  group by ({agg}) (max_over_time({sel}[{a.lookback}]))\n"
        f"  unless on ({agg})\n  group by ({agg}) ({sel})\n)\n"
        f"or on ()\nabsent({sel})"
    )
    return Alert(
        name=f"{cfg.alerts.prefix}OutcomesAbsent",
        expr=expr,
        inline_expr=expr,
        for_=a.for_,
        severity=a.severity,
        summary=f"{cfg.metric} has disappeared.",
        description=(
            f"No series of {sel} for {a.for_} ({agg}: {_who(cfg.aggregation_labels)}, empty "
            "when the whole metric is gone): the producers are down, no longer scraped, or "
            "renamed the metric; every other alert is blind to them."
        ),
    )


def _fanout_alert(cfg: Config) -> Alert:
    c = cfg.consumer
    r = c.cancelled

    def expr(qc: Consumer) -> str:
        return (
            f"{qc.cancelled_ratio(r.window)} > {num(r.threshold)}\n"
            f"and on ({by(c.aggregation_labels)})\n{qc.enough_cancelled(r.window)}"
        )

    return Alert(
        name=f"{cfg.alerts.prefix}FanoutCancelsOwnFetches",
        expr=expr(Consumer(cfg)),
        inline_expr=expr(Consumer(cfg, inline=True)),
        for_=r.for_,
        severity=r.severity,
        summary="A fan-out is cancelling its own in-flight fetches (a cancel cascade).",
        description=(
            f"{_who(c.aggregation_labels)}: {{value}} of its fetches were cancelled by the "
            f"consumer itself over the last {r.window} (threshold {num(r.threshold * 100)}%). "
            "One failing fetch is cancelling its siblings (errgroup/TaskGroup semantics), or "
            "its own timeouts are too short; the producers see these as client_gone."
        ),
    )


def _burn_alert(cfg: Config, b: BurnRate) -> Alert:
    long, short, factor = b.long, b.short, b.factor
    threshold = f"({num(factor)} * (1 - {num(cfg.slo.objective)}))"
    excluded = ", ".join(cfg.excluded_reasons) or "nothing"
    errors = [r for r in cfg.error_reasons if cfg.has(r)]

    def expr(q: Queries) -> str:
        return (
            f"(\n  {q.error_ratio(long)} > {threshold}\nand on ({by(q.agg)})\n"
            f"  {q.error_ratio(short)} > {threshold}\n)\n"
            f"and on ({by(q.agg)})\n{q.enough_events(long, cfg.error_reasons)}"
        )

    return Alert(
        name=f"{cfg.alerts.prefix}ErrorBudgetBurn",
        expr=expr(Queries(cfg)),
        inline_expr=expr(Queries(cfg, inline=True)),
        for_=b.for_,
        severity=b.severity,
        summary="A streaming producer is burning its error budget.",
        description=(
            f"{_who(cfg.aggregation_labels)}: {{value}} of outcomes failed "
            f"({' or '.join(errors)}) over the last {long} and {short}, {num(factor)}x the "
            f"rate the {num(cfg.slo.objective * 100)}% objective allows over {cfg.slo.period} "
            f"({excluded} excluded from both sides)."
        ),
        labels={"long": long, "short": short},
    )


# -- the four formats ---------------------------------------------------------------------


def rule_name(cfg: Config, alert: str) -> str:
    """The alert's name without the prefix: what errclass's runbook headings are."""
    return alert.removeprefix(cfg.alerts.prefix)


def _runbook(cfg: Config, alert: str) -> str:
    rule = rule_name(cfg, alert)
    return cfg.alerts.runbook_url.format(
        alert=alert, alert_lower=alert.lower(), rule=rule, rule_lower=rule.lower(), name=cfg.name
    )


def prometheus_groups(cfg: Config) -> list[dict[str, Any]]:
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
    out = []
    for suffix, interval, recorded in recording_groups(cfg):
        every = {"interval": interval} if interval else {}
        out.append({"name": f"{cfg.name}.{suffix}", **every, "rules": recorded})
    every = {"interval": cfg.rule_interval} if cfg.rule_interval else {}
    out.append({"name": f"{cfg.name}.alerts", **every, "rules": rules})
    return out


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
                "title": a.title(),
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
