"""Where PromQL lives in each supported format. Walkers see a file through a view
(JSON or YAML) and return the sites, in a stable order, plus what they skipped."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from errclass.migrate._documents import View
from errclass.migrate._sites import Site

# What a skipped query is counted as in the summary.
NOT_PROMQL = "not PromQL"
EMPTY = "empty"


@dataclass
class Extracted:
    formats: list[str] = field(default_factory=list)  # one per recognised document
    sites: list[Site] = field(default_factory=list)  # expressions, and embedded documents
    notes: list[str] = field(default_factory=list)  # skipped documents and places
    skipped: Counter[str] = field(default_factory=Counter)  # queries that are not PromQL


def extract(view: View) -> Extracted:
    out = Extracted()
    many = len(view.roots) > 1
    for n, root in enumerate(view.roots, 1):
        prefix = f"document {n}: " if many else ""
        _one(view, root, prefix, out)
    return out


def _one(view: View, root: Any, prefix: str, out: Extracted) -> None:
    fmt = _document(view, root, prefix, out)
    if fmt is None:
        out.notes.append(f"{prefix}not a dashboard or rule file: skipped")
    elif fmt:  # "" for a container: its documents name their own formats
        out.formats.append(fmt)


def _document(view: View, root: Any, prefix: str, out: Extracted) -> str | None:
    m = view.map(root)
    if m is None:
        return None
    kind = view.string(m.get("kind"))
    api = view.string(m.get("apiVersion")) or ""
    if kind in _KUBERNETES:
        return _KUBERNETES[kind](view, m, prefix, out)
    inner = view.map(m.get("dashboard"))
    if inner is not None and ("panels" in inner or "templating" in inner):
        _classic(view, inner, prefix, out)
        return "grafana dashboard"
    if kind == "Dashboard" and api.startswith("dashboard.grafana.app/"):
        _v2(view, view.map(m.get("spec")) or {}, prefix, out)
        return "grafana dashboard v2"
    if "panels" in m or "templating" in m or "rows" in m:
        _classic(view, m, prefix, out)
        return "grafana dashboard"
    if kind == "PrometheusRule":
        name = view.string((view.map(m.get("metadata")) or {}).get("name")) or "?"
        spec = view.map(m.get("spec")) or {}
        _rule_groups(view, spec.get("groups"), f'{prefix}PrometheusRule "{name}" ', out)
        return "PrometheusRule"
    if kind == "PrometheusServiceLevel":
        _sloth(view, view.map(m.get("spec")) or {}, prefix, out)
        return "Sloth SLO"
    if view.string(m.get("version")) == "prometheus/v1" and "slos" in m:
        _sloth(view, m, prefix, out)
        return "Sloth SLO"
    if "groups" in m:
        groups = view.seq(m.get("groups"))
        if _is_grafana_managed(view, groups):
            _grafana_rules(view, groups, prefix, out)
            return "Grafana alerting provisioning"
        if "namespace" in m:
            ns = view.string(m.get("namespace")) or "?"
            _rule_groups(view, m.get("groups"), f'{prefix}namespace "{ns}" ', out)
            return "Mimir namespace"
        _rule_groups(view, m.get("groups"), prefix, out)
        return "Prometheus rules"
    if _helm_values(view, m, prefix, out):
        return "Helm values"
    return None


# --- Kubernetes objects that hold dashboards ------------------------------------


def _name(view: View, m: dict[str, Any]) -> str:
    return view.string((view.map(m.get("metadata")) or {}).get("name")) or "?"


def _list(view: View, m: dict[str, Any], prefix: str, out: Extracted) -> str | None:
    """ConfigMapList, List: each item is a document of its own."""
    items = view.seq(m.get("items"))
    for n, item in enumerate(items, 1):
        _one(view, item, f"{prefix}item {n}: " if view.map(item) is None else prefix, out)
    return "" if items else None


def _configmap(view: View, m: dict[str, Any], prefix: str, out: Extracted) -> str | None:
    """A ConfigMap's data values hold dashboards (``*.json``: Grafana's sidecar,
    kube-prometheus) and Prometheus rule files (``*.yaml``, ``*.yml``, ``*.rules``: the
    prometheus chart's ``serverFiles``, Thanos and Mimir rulers); each is read as a
    document of its own by the caller."""
    data = view.map(m.get("data")) or {}
    where = f'{prefix}ConfigMap "{_name(view, m)}"'
    found = False
    for key, value in data.items():
        text = view.string(value)
        kind = _data_kind(key, text)
        if not kind:
            continue
        found = True
        if text is not None and text.strip() in _EMPTY:  # the prometheus chart's default
            out.notes.append(f'{where} data "{key}": empty: skipped')
        else:
            _embedded(view, data, key, f'{where} data "{key}"', out, kind=kind)
    return "" if found else None


_EMPTY = ("", "{}", "[]")


# ConfigMap data keys read as documents, by how the key ends.
_DATA_KINDS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".rules": "yaml"}
# A rule file under a key without an extension (the prometheus chart's legacy ``alerts``
# and ``rules``): its first key is ``groups``, quoted or not, after comments.
_RULES_TEXT = re.compile(
    r"""\A(?:\s*#[^\n]*\n)*\s*(?:---\s*\n\s*)?(?:\{\s*)?["']?groups["']?\s*:"""
)


def _data_kind(key: str, value: str | None) -> str:
    """How to read the data value under *key*: "json", "yaml", or "" (not a document)."""
    low = key.lower()
    for suffix, kind in _DATA_KINDS.items():
        if low.endswith(suffix):
            return kind
    if "." not in key and value is not None and _RULES_TEXT.match(value):
        return "yaml"
    return ""


def _grafana_dashboard(view: View, m: dict[str, Any], prefix: str, out: Extracted) -> str | None:
    """grafana-operator's GrafanaDashboard: the dashboard JSON in ``spec.json``."""
    spec = view.map(m.get("spec")) or {}
    where = f'{prefix}GrafanaDashboard "{_name(view, m)}"'
    if "json" in spec:
        _embedded(view, spec, "json", where, out)
        return ""
    for key in ("gzipJson", "url", "grafanaCom", "configMapRef", "jsonnet"):
        if key in spec:
            out.notes.append(f"{where} (spec.{key}): a dashboard not written in the file: skipped")
            return ""
    return None


def _embedded(
    view: View, holder: Any, key: str, where: str, out: Extracted, *, kind: str = "json"
) -> None:
    site = view.site(holder, key, where)
    if site is None:
        out.notes.append(f"{where}: not a string: skipped")
    else:
        site.document = kind
        out.sites.append(site)


def _helm_release(view: View, m: dict[str, Any], prefix: str, out: Extracted) -> str | None:
    """Flux's HelmRelease: a chart's values inline, in ``spec.values``."""
    values = view.map((view.map(m.get("spec")) or {}).get("values")) or {}
    found = _helm_values(view, values, f'{prefix}HelmRelease "{_name(view, m)}" ', out)
    return "Helm values" if found else None


_KUBERNETES = {
    "ConfigMap": _configmap,
    "ConfigMapList": _list,
    "List": _list,
    "GrafanaDashboard": _grafana_dashboard,
    "HelmRelease": _helm_release,
}


# --- dashboards ------------------------------------------------------------------


# Datasource types (or names) whose queries are not PromQL, though they use expr too.
_NOT_PROMETHEUS = re.compile(
    r"loki|elasticsearch|opensearch|influx|graphite|tempo|jaeger|zipkin|mysql|postgres"
    r"|mssql|cloudwatch|stackdriver|azure|testdata|-- grafana --|-- dashboard --",
    re.IGNORECASE,
)


def _prometheus(view: View, *holders: dict[str, Any]) -> bool:
    """False when a datasource (the nearest that says) is not Prometheus: by its type,
    or by a name such as "Loki" or "${DS_LOKI}" in older dashboards. *holders*: the
    mappings of a query and of what holds it."""
    for h in holders:
        node = h.get("datasource")
        if node is None:  # none here (a view's mappings hold no None but JSON's null)
            continue
        ds = view.map(node)
        if ds is not None:
            kind = view.string(ds.get("type"))
            if kind:
                return "prometheus" in kind.lower() or kind.startswith("$")
            continue
        name = view.string(node)
        if name:
            return _NOT_PROMETHEUS.search(name) is None
    return True


def _add(out: Extracted, site: Site | None) -> None:
    if site is not None:
        out.sites.append(site)


def _classic(view: View, dash: dict[str, Any], prefix: str, out: Extracted) -> None:
    for panel in view.seq(dash.get("panels")):
        _panel(view, panel, prefix, out)
    for row in view.seq(dash.get("rows")):  # schema before Grafana 5
        title = view.string((view.map(row) or {}).get("title")) or "?"
        for panel in view.seq((view.map(row) or {}).get("panels")):
            _panel(view, panel, f'{prefix}row "{title}" / ', out)
    templating = view.map(dash.get("templating")) or {}
    for var in view.seq(templating.get("list")):
        v = view.map(var) or {}
        if view.string(v.get("type")) != "query" or not _prometheus(view, v):
            continue
        where = f'{prefix}variable "{view.string(v.get("name")) or "?"}"'
        q = v.get("query")
        holder = var if view.string(q) is not None else q
        _add(out, view.site(holder, "query", where, template=True))
    annotations = view.map(dash.get("annotations")) or {}
    for ann in view.seq(annotations.get("list")):
        a = view.map(ann) or {}
        if not _prometheus(view, a):
            continue
        where = f'{prefix}annotation "{view.string(a.get("name")) or "?"}"'
        _add(out, view.site(ann, "expr", where))
        _add(out, view.site(a.get("target"), "expr", where))


def _panel(view: View, panel: Any, prefix: str, out: Extracted) -> None:
    p = view.map(panel) or {}
    title = view.string(p.get("title")) or f"id {view.string(p.get('id')) or '?'}"
    where = f'{prefix}panel "{title}"'
    for target in view.seq(p.get("targets")):  # the hot loop: each mapping read once
        t = view.map(target) or {}
        if not _prometheus(view, t, p):
            if view.string(t.get("expr")):
                out.skipped[NOT_PROMQL] += 1
            continue
        _add(out, view.site(t, "expr", f"{where} query {view.string(t.get('refId')) or '?'}"))
    for nested in view.seq(p.get("panels")):  # a collapsed row keeps its panels inside
        _panel(view, nested, f'{prefix}row "{title}" / ', out)


def _query_spec(view: View, holder: Any) -> tuple[Any, bool]:
    """The spec of a v2 query and whether it is Prometheus (v2beta1 ``kind: DataQuery``
    names the datasource type in ``group``; v2alpha1 in ``kind``)."""
    q = view.map(holder) or {}
    kind = view.string(q.get("kind")) or ""
    group = (view.string(q.get("group")) or "") if kind == "DataQuery" else kind
    return q.get("spec"), not group or "prometheus" in group.lower()


def _v2(view: View, spec: dict[str, Any], prefix: str, out: Extracted) -> None:
    for key, element in view.items(spec.get("elements")):
        es = view.map((view.map(element) or {}).get("spec")) or {}
        where = f'{prefix}panel "{view.string(es.get("title")) or key}"'
        data = view.map((view.map(es.get("data")) or {}).get("spec")) or {}
        for query in view.seq(data.get("queries")):
            qs = view.map((view.map(query) or {}).get("spec")) or {}
            inner, ok = _query_spec(view, qs.get("query"))
            if ok:
                ref = view.string(qs.get("refId")) or "?"
                _add(out, view.site(inner, "expr", f"{where} query {ref}"))
    for var in view.seq(spec.get("variables")):
        v = view.map(var) or {}
        if view.string(v.get("kind")) != "QueryVariable":
            continue
        vs = view.map(v.get("spec")) or {}
        inner, ok = _query_spec(view, vs.get("query"))
        if ok:
            where = f'{prefix}variable "{view.string(vs.get("name")) or "?"}"'
            _add(out, view.site(inner, "expr", where, template=True))
            _add(out, view.site(inner, "query", where, template=True))
    for ann in view.seq(spec.get("annotations")):
        s = view.map((view.map(ann) or {}).get("spec")) or {}
        inner, ok = _query_spec(view, s.get("query"))
        if ok:
            where = f'{prefix}annotation "{view.string(s.get("name")) or "?"}"'
            _add(out, view.site(inner, "expr", where))


# --- rules -----------------------------------------------------------------------


def _rule_groups(view: View, groups: Any, prefix: str, out: Extracted) -> None:
    for group in view.seq(groups):
        g = view.map(group) or {}
        gname = view.string(g.get("name")) or "?"
        for rule in view.seq(g.get("rules")):
            r = view.map(rule) or {}
            alert = view.string(r.get("alert"))
            what = f'alert "{alert}"' if alert else f'record "{view.string(r.get("record"))}"'
            where = f'{prefix}group "{gname}" {what}'
            _add(out, view.site(r, "expr", where, alert=alert is not None))


# --- Helm values: the rules a chart renders into a ConfigMap or a PrometheusRule -----

# Keys whose value maps a name to a rule file written as YAML (``{groups: [...]}``): the
# prometheus chart's ``serverFiles`` (``alerting_rules.yml``, ``recording_rules.yml``,
# the legacy ``alerts`` / ``rules``), kube-prometheus-stack's and
# victoria-metrics-k8s-stack's maps of rule resources.
_VALUES_MAPS = ("serverFiles", "additionalPrometheusRulesMap", "additionalVictoriaMetricsMap")


def _helm_values(view: View, m: dict[str, Any], prefix: str, out: Extracted) -> bool:
    """Read the rules in a chart's values, at the top or under a subchart's key (an
    umbrella chart's values); False when there are none (a values file without rules,
    or with only the charts' empty defaults, is not one of ours)."""
    found = _chart_values(view, m, prefix, out)
    for key, sub in m.items():
        sm = view.map(sub)
        if sm is not None and key not in _VALUES_MAPS:
            found |= _chart_values(view, sm, f"{prefix}{key}.", out)
    return found


def _chart_values(view: View, m: dict[str, Any], prefix: str, out: Extracted) -> bool:
    found = False
    for key in _VALUES_MAPS:
        for name, rules in view.items(m.get(key)):
            groups = (view.map(rules) or {}).get("groups")
            if view.seq(groups):
                _rule_groups(view, groups, f'{prefix}{key} "{name}" ', out)
                found = True
    # kube-prometheus-stack's older list form: [{name: ..., groups: [...]}]
    for n, item in enumerate(view.seq(m.get("additionalPrometheusRules")), 1):
        r = view.map(item) or {}
        if view.seq(r.get("groups")):
            name = view.string(r.get("name")) or str(n)
            where = f'{prefix}additionalPrometheusRules "{name}" '
            _rule_groups(view, r.get("groups"), where, out)
            found = True
    # the prometheus chart's ruleFiles: rule files as strings, inserted as they are
    files = view.map(m.get("ruleFiles")) or {}
    for name, text in files.items():
        if _RULES_TEXT.match(view.string(text) or ""):
            _embedded(view, files, name, f'{prefix}ruleFiles "{name}"', out, kind="yaml")
            found = True
    return found


def _is_grafana_managed(view: View, groups: list[Any]) -> bool:
    for group in groups:
        for rule in view.seq((view.map(group) or {}).get("rules")):
            if "data" in (view.map(rule) or {}):
                return True
    return False


def _grafana_rules(view: View, groups: list[Any], prefix: str, out: Extracted) -> None:
    for group in groups:
        g = view.map(group) or {}
        gname = view.string(g.get("name")) or "?"
        for rule in view.seq(g.get("rules")):
            r = view.map(rule) or {}
            title = view.string(r.get("title")) or view.string(r.get("uid")) or "?"
            data = [view.map(d) or {} for d in view.seq(r.get("data"))]
            math = any(view.string(d.get("datasourceUid")) == "__expr__" for d in data)
            for d in data:
                if view.string(d.get("datasourceUid")) == "__expr__":
                    continue
                ref = view.string(d.get("refId")) or "?"
                where = f'{prefix}group "{gname}" rule "{title}" query {ref}'
                _add(
                    out,
                    view.site(d.get("model"), "expr", where, alert=True, threshold_elsewhere=math),
                )


def _sloth(view: View, spec: dict[str, Any], prefix: str, out: Extracted) -> None:
    for slo in view.seq(spec.get("slos")):
        s = view.map(slo) or {}
        where = f'{prefix}SLO "{view.string(s.get("name")) or "?"}"'
        sli = view.map(s.get("sli")) or {}
        events = sli.get("events")
        # error_query / total_query form one ratio: both sides exclude the split values
        _add(out, view.site(events, "error_query", f"{where} error_query", ratio=True))
        _add(out, view.site(events, "total_query", f"{where} total_query", ratio=True))
        raw = sli.get("raw")
        _add(out, view.site(raw, "error_ratio_query", f"{where} error_ratio_query"))
