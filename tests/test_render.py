"""errclass render: committed outputs, promtool on every rule format, dashboard lint,
PromQL validity, and config errors that name the field and the file position."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from errclass import monitoring
from errclass.monitoring import Config, ConfigError
from tests.support import ROOT, python_argv, require_tool

EXAMPLE = ROOT / "errclass" / "monitoring" / "examples" / "teranode.toml"
DS = {"type": "prometheus", "uid": "${datasource}"}


def seed_config(**changes: Any) -> Config:
    data = tomllib.loads(EXAMPLE.read_text())
    data.update(changes)
    return monitoring.from_mapping(data)


RENDERS = {
    "default": lambda: monitoring.render(),
    "seed": lambda: monitoring.render(seed_config()),
}


@pytest.fixture(params=sorted(RENDERS))
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    files = RENDERS[request.param]()
    monitoring.write(files, tmp_path)
    return request.param, tmp_path


# -- Grafana variable masking and PromQL parsing --------------------------------------------

_VAR = re.compile(r"\$\{[^}]+\}|\$[A-Za-z_]\w*|\[\[[A-Za-z_]\w*\]\]")


def mask(expr: str) -> str:
    """Replace Grafana variables outside string literals: a duration after `[`, `:` or
    `offset`, a number elsewhere. Variables inside strings already parse."""
    out, i, quote = [], 0, ""
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = ""
            i += 1
            continue
        if c in "\"'`":
            quote = c
            out.append(c)
            i += 1
            continue
        m = _VAR.match(expr, i)
        if m and not (c == "[" and not m.group().startswith("[[")):
            before = "".join(out).rstrip()
            duration = before.endswith(("[", ":", "offset"))
            out.append("5m" if duration else "1")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse(expr: str) -> Any:
    import promql_parser

    return promql_parser.parse(mask(expr))


def test_mask_handles_grafana_forms() -> None:
    assert mask('rate(x{a=~"$job"}[$__rate_interval])') == 'rate(x{a=~"$job"}[5m])'
    assert mask("x offset ${off} > $threshold") == "x offset 5m > 1"
    assert mask("rate(x[[[interval]]])") == "rate(x[5m])"
    for e in ('rate(x{a=~"$job"}[$__rate_interval])', "x offset ${off} > $threshold"):
        parse(e)


def targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            out.extend((p, t) for t in p.get("targets", []))
    return out


def lint_dashboard(d: dict[str, Any]) -> list[str]:
    """The checks of grafana's dashboard-linter that matter, plus ours."""
    problems: list[str] = []
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,40}", d.get("uid") or ""):
        problems.append(f"uid {d.get('uid')!r} is not a stable 8-40 character uid")
    for key in ("title", "schemaVersion", "templating", "panels"):
        if not d.get(key):
            problems.append(f"dashboard has no {key}")
    # Tags are the user's choice (``dashboard.tags = []`` is valid in Grafana), but
    # the key must be there and hold strings.
    tags = d.get("tags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"dashboard tags {tags!r} are not a list of strings")
    problems += _lint_variables(d) + _lint_panels(d) + _lint_targets(d)
    return problems


def _lint_variables(d: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds_vars = [v for v in variables.values() if v["type"] == "datasource"]
    if [v["name"] for v in ds_vars] != ["datasource"] or ds_vars[0]["query"] != "prometheus":
        problems.append("needs exactly one prometheus datasource variable named datasource")
    for name in ("job", "instance"):
        if name not in variables:
            problems.append(f"no {name} variable")
    for v in variables.values():
        if v["type"] == "query":
            if v.get("datasource") != DS:
                problems.append(f"variable {v['name']} does not use ${{datasource}}")
            query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
            if not m:
                problems.append(f"variable {v['name']}: unexpected query {query!r}")
            else:
                parse(m.group(1))
    return problems


def _lint_panels(d: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    ids = [p["id"] for p in d["panels"]]
    if len(set(ids)) != len(ids):
        problems.append("duplicate panel ids")
    for p in d["panels"]:
        where = f"panel {p.get('title')!r}"
        if not p.get("title") or not p.get("description"):
            problems.append(f"{where}: needs a title and a description")
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            problems.append(f"{where}: no unit")
        if p.get("datasource") != DS:
            problems.append(f"{where}: datasource is {p.get('datasource')!r}, not ${{datasource}}")
        if not p.get("targets"):
            problems.append(f"{where}: no targets")
        if not {"h", "w", "x", "y"} <= set(p.get("gridPos", {})):
            problems.append(f"{where}: no gridPos")
        refs = [t["refId"] for t in p.get("targets", [])]
        if len(set(refs)) != len(refs):
            problems.append(f"{where}: duplicate refIds")
    return problems


def _lint_targets(d: dict[str, Any]) -> list[str]:
    import promql_parser

    problems: list[str] = []
    for p, t in targets(d):
        where = f"panel {p['title']!r} target {t.get('refId')}"
        if t.get("datasource") != DS:
            problems.append(f"{where}: datasource is not ${{datasource}}")
        try:
            expr = parse(t["expr"])
        except ValueError as e:
            problems.append(f"{where}: not valid PromQL after masking: {e}")
            continue
        ranges: list[Any] = []

        def visit(node: Any, ranges: list[Any] = ranges) -> bool:
            if isinstance(node, promql_parser.MatrixSelector):
                ranges.append(node.range)
            return True

        promql_parser.walk(expr, pre_visit=visit)
        if ranges and "[$__rate_interval]" not in t["expr"]:
            problems.append(f"{where}: rate windows must be $__rate_interval")
        if re.search(r"\[(?!\$__rate_interval\])[^\]]*\]", re.sub(r'"[^"]*"', '""', t["expr"])):
            problems.append(f"{where}: a range other than $__rate_interval")
    return problems


# -- committed outputs --------------------------------------------------------------------


def test_committed_outputs_are_what_render_produces() -> None:
    files = monitoring.render()
    assert set(files) >= {
        "grafana/errclass-outcomes.json",
        "alerts/errclass.rules.yaml",
        "alerts/errclass.prometheusrule.yaml",
        "alerts/errclass.mimir.yaml",
        "alerts/errclass.grafana.yaml",
    }
    stale = [rel for rel, text in files.items() if (ROOT / rel).read_text() != text]
    assert not stale, f"run `make render` and commit: {stale} differ from errclass render"
    committed = {
        str(p.relative_to(ROOT))
        for p in [
            *(ROOT / "grafana").rglob("*.json"),
            *(ROOT / "alerts").glob("*.yaml"),
            *(ROOT / "alerts").glob("*.md"),
        ]
    }
    assert committed == set(files), (
        "files in grafana/ or alerts/ that errclass render does not make"
    )
    assert monitoring.render() == files  # deterministic


def test_render_check_flag_detects_drift(tmp_path: Path) -> None:
    argv = python_argv("-m", "errclass", "render", "--out", str(tmp_path))
    assert subprocess.run([*argv, "--check"], check=False, capture_output=True).returncode == 1
    assert subprocess.run(argv, capture_output=True, check=True).returncode == 0
    assert subprocess.run([*argv, "--check"], check=False, capture_output=True).returncode == 0
    (tmp_path / "alerts" / "errclass.rules.yaml").write_text("groups: []\n")
    r = subprocess.run([*argv, "--check"], check=False, capture_output=True, text=True)
    assert r.returncode == 1
    assert "errclass.rules.yaml is out of date" in r.stderr


# -- promtool -----------------------------------------------------------------------------


def _rule_files(out: Path) -> dict[str, Path]:
    """Every rule output as a file promtool reads (CRD: its spec; Mimir: its groups;
    Grafana: its queries as alerting rules)."""
    alerts = out / "alerts"
    found: dict[str, Path] = {}
    for path in sorted(alerts.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if path.name.endswith(".rules.yaml"):
            found["prometheus"] = path
            continue
        if data.get("kind") == "PrometheusRule":
            assert data["apiVersion"] == "monitoring.coreos.com/v1"
            assert data["metadata"]["labels"]["release"]
            groups = data["spec"]["groups"]
            kind = "prometheusrule"
        elif "namespace" in data:
            assert set(data) == {"namespace", "groups"}
            groups = data["groups"]
            kind = "mimir"
        else:
            assert data["apiVersion"] == 1
            groups = [
                {
                    "name": g["name"],
                    "rules": [
                        {
                            "alert": r["title"],
                            "expr": next(
                                d["model"]["expr"]
                                for d in r["data"]
                                if d["datasourceUid"] != "__expr__"
                            ),
                            "labels": r["labels"],
                        }
                        for r in g["rules"]
                    ],
                }
                for g in data["groups"]
            ]
            kind = "grafana"
        extracted = out / f"{kind}.extracted.yaml"
        extracted.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        found[kind] = extracted
    assert set(found) == {"prometheus", "prometheusrule", "mimir", "grafana"}
    return found


def test_promtool_check_rules_lint_fatal_on_every_format(rendered: tuple[str, Path]) -> None:
    promtool = require_tool("promtool")
    _, out = rendered
    for kind, path in _rule_files(out).items():
        r = subprocess.run(
            [promtool, "check", "rules", "--lint-fatal", str(path)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, f"{kind}: {r.stdout}{r.stderr}"
        assert "SUCCESS" in r.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    # The check above can fail: a duplicate rule is a lint error under --lint-fatal.
    promtool = require_tool("promtool")
    data = yaml.safe_load((ROOT / "alerts" / "errclass.rules.yaml").read_text())
    data["groups"][0]["rules"].append(data["groups"][0]["rules"][0])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    r = subprocess.run(
        [promtool, "check", "rules", "--lint-fatal", str(bad)], check=False, capture_output=True
    )
    assert r.returncode != 0


UNIT_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yaml"))


def test_unit_tests_cover_the_scenarios() -> None:
    names = {p.stem for p in UNIT_TESTS}
    assert names >= {
        "split",
        "fault_burst",
        "slow_burn",
        "deadline",
        "low_traffic",
        "absent",
        "fanout",
    }
    for path in UNIT_TESTS:
        data = yaml.safe_load(path.read_text())
        fired = [
            t
            for test in data["tests"]
            for t in test.get("alert_rule_test", [])
            if t.get("exp_alerts")
        ] + [  # an alert's first firing time, read from ALERTS
            t
            for test in data["tests"]
            for t in test.get("promql_expr_test", [])
            if "ALERTS" in t["expr"] and t.get("exp_samples")
        ]
        assert fired or path.stem == "low_traffic", f"{path.name} expects no alert at all"


@pytest.mark.parametrize("path", UNIT_TESTS, ids=[p.stem for p in UNIT_TESTS])
def test_promtool_unit_tests(path: Path) -> None:
    promtool = require_tool("promtool")
    r = subprocess.run(
        [promtool, "test", "rules", str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=path.parent,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_unit_tests_fail_when_client_gone_counts_as_an_error(tmp_path: Path) -> None:
    """The split test has teeth: render with client_gone counted as an error (the old
    behaviour) and it fails, because the page fires."""
    promtool = require_tool("promtool")
    cfg = monitoring.from_mapping(
        {
            "error_reasons": ["write_failed", "deadline_exceeded", "client_gone"],
            "excluded_reasons": [],
        }
    )
    monitoring.write(monitoring.render(cfg), tmp_path)
    shutil.copytree(ROOT / "alerts" / "tests", tmp_path / "alerts" / "tests")
    test = tmp_path / "alerts" / "tests" / "split.yaml"
    r = subprocess.run(
        [promtool, "test", "rules", str(test)], check=False, capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "ErrclassErrorBudgetBurn" in r.stdout + r.stderr


# -- dashboards ---------------------------------------------------------------------------


def test_dashboards_pass_the_lint(rendered: tuple[str, Path]) -> None:
    name, out = rendered
    boards = sorted((out / "grafana").rglob("*.json"))
    assert len(boards) == 2
    for path in boards:
        d = json.loads(path.read_text())
        assert lint_dashboard(d) == [], path
        vars_ = {v["name"] for v in d["templating"]["list"]}
        assert ("producer" in vars_) == (name == "default")


def test_dashboard_lint_catches_problems() -> None:
    d = json.loads((ROOT / "grafana" / "errclass-outcomes.json").read_text())
    d["panels"][0]["datasource"] = {"type": "prometheus", "uid": "abc"}
    d["panels"][1]["targets"][0]["expr"] = "rate(x[5m])"
    d["panels"][2]["targets"][0]["expr"] = "sum(rate(x[$__rate_interval])"
    del d["panels"][3]["fieldConfig"]["defaults"]["unit"]
    problems = "\n".join(lint_dashboard(d))
    assert "datasource is" in problems
    assert "must be $__rate_interval" in problems
    assert "not valid PromQL" in problems
    assert "no unit" in problems


def test_dashboard_has_the_panels_of_the_split() -> None:
    d = json.loads((ROOT / "grafana" / "errclass-outcomes.json").read_text())
    titles = [p["title"] for p in d["panels"]]
    assert titles == [
        "Outcomes by reason",
        "client_gone vs write_failed",
        "Error ratio (client_gone excluded)",
        "Deadline ratio",
        "Legacy-equivalent write_failed",
        "Outcomes per instance",
        "SLO burn rate",
        "Error budget remaining",
        "Fan-out: failed and self-cancelled fetches",
        "Fan-out: share cancelled by us",
    ]
    by_title = {p["title"]: p for p in d["panels"]}
    ratio = by_title["Error ratio (client_gone excluded)"]["targets"][0]["expr"]
    num, den = ratio.split(" / ")
    assert 'reason=~"write_failed|deadline_exceeded"' in num
    assert 'reason!="client_gone"' in den
    assert " or 0 * " in num  # 0, not "No data", while no error series exists
    assert (
        by_title["Outcomes by reason"]["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"]
        == "normal"
    )
    legacy = by_title["Legacy-equivalent write_failed"]["targets"][0]["expr"]
    assert 'reason=~"write_failed|client_gone|deadline_exceeded"' in legacy


def test_export_variant_has_inputs_and_keeps_the_variable() -> None:
    d = json.loads((ROOT / "grafana" / "import" / "errclass-outcomes.json").read_text())
    assert d["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert d["__inputs"][0]["pluginId"] == "prometheus"
    ds_var = d["templating"]["list"][0]
    assert ds_var["current"]["value"] == "${DS_PROMETHEUS}"
    assert all(t["datasource"] == DS for _, t in targets(d))


def test_every_rule_expression_parses(rendered: tuple[str, Path]) -> None:
    _, out = rendered
    for path in _rule_files(out).values():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                parse(rule["expr"])


# -- rules content ------------------------------------------------------------------------


def test_rules_follow_mixin_conventions() -> None:
    data = yaml.safe_load((ROOT / "alerts" / "errclass.rules.yaml").read_text())
    records, slow, alerts = data["groups"]
    assert slow["name"] == "errclass.rules.long" and slow["interval"] == "2m30s"
    assert all(r["record"].endswith(("1d", "3d", "30d")) for r in slow["rules"][:9])
    names = [r["record"] for r in records["rules"] + slow["rules"]]
    assert all(":" in n and not n.startswith("errclass_outcomes_total") for n in names)
    assert "job_producer:errclass_outcomes:legacy_write_failed_rate5m" in names
    for rule in alerts["rules"]:
        assert re.fullmatch(r"Errclass[A-Z][A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        anchor = rule["alert"].removeprefix("Errclass").lower()
        assert rule["annotations"]["runbook_url"].endswith("#" + anchor)
    burns = [r for r in alerts["rules"] if r["alert"] == "ErrclassErrorBudgetBurn"]
    assert [
        (r["labels"]["long"], r["labels"]["short"], r["labels"]["severity"]) for r in burns
    ] == [
        ("1h", "5m", "critical"),
        ("6h", "30m", "critical"),
        ("1d", "2h", "warning"),
        ("3d", "6h", "warning"),
    ]
    # The low-traffic guard: 2 failed outcomes in the long window.
    for r, seconds in zip(burns, (3600, 21600, 86400, 259200), strict=True):
        assert r["expr"].endswith(f">= (2 / {seconds})"), r["expr"]


def test_seed_render_uses_the_source_label() -> None:
    files = monitoring.render(seed_config())
    rules = files["alerts/teranode-subtree-data.rules.yaml"]
    assert "teranode_asset_repository_subtree_data_created_total" in rules
    assert 'source=~"write_failed|creation_failed|close_failed|quorum_lock_failed' in rules
    assert 'source!="client_gone"' in rules
    assert "reason" not in re.sub(r"#.*|description: .*", "", rules).replace("reasons", "")
    crd = yaml.safe_load(files["alerts/teranode-subtree-data.prometheusrule.yaml"])
    assert crd["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    assert (
        yaml.safe_load(files["alerts/teranode-subtree-data.mimir.yaml"])["namespace"] == "teranode"
    )


# -- config errors ------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_argv("-m", "errclass", "render", "--out", str(tmp_path / "out"), *args),
        check=False,
        capture_output=True,
        text=True,
    )


BURN = """
[[burn_rates]]
long = "1h"
short = "5m"
factor = 14.4
severity = "critical"

[[burn_rates]]
long = "6h"
short = "30m"
factor = 2000
severity = "critical"
"""
BURN = """[[burn_rates]]
long = "1h"
short = "5m"
factor = 14.4
severity = "critical"

[[burn_rates]]
long = "6h"
short = "30m"
factor = 2000
severity = "critical"
"""
BAD_CONFIGS = [
    # (file name, text, expected message parts)
    (
        "unknown.toml",
        'metric = "m_total"\n\n[slo]\nobjectiv = 0.99\n',
        ["unknown.toml:4:1", "slo.objectiv", "unknown key"],
    ),
    (
        "type.toml",
        'metric = "m_total"\naggregation_labels = "job"\n',
        ["type.toml:2:1", "aggregation_labels", "must be a list"],
    ),
    (
        "objective.toml",
        "[slo]\nobjective = 99.9\n",
        ["objective.toml:2:1", "slo.objective", "impossible"],
    ),
    (
        "label.toml",
        'reason_label = "reason-code"\n',
        ["label.toml:1:1", "reason_label", "not a label name"],
    ),
    (
        "burn.toml",
        BURN,
        ["burn.toml:10:1", "burn_rates[1].factor", "can never exceed"],
    ),
    (
        "unknown.yaml",
        "metric: m_total\nalerts:\n  deadline:\n    threshhold: 0.1\n",
        ["unknown.yaml:4:5", "alerts.deadline.threshhold", "unknown key"],
    ),
    (
        "type.yaml",
        "slo:\n  objective: high\n",
        ["type.yaml:2:3", "slo.objective", "must be a number"],
    ),
    (
        "label.yaml",
        "aggregation_labels: [job, 'pod name']\n",
        ["label.yaml:1:27", "aggregation_labels[1]", "not a label name"],
    ),
    (
        "selector.yaml",
        "selector: 'job=asset'\n",
        ["selector.yaml:1:1", "selector", "not a PromQL matcher list"],
    ),
    (
        "duration.toml",
        '[alerts.deadline]\nwindow = "5 minutes"\n',
        ["duration.toml:2:1", "alerts.deadline.window", "not a Prometheus duration"],
    ),
    (
        "reasons.toml",
        '[reasons]\nok = "ok"\nwrite_faild = "x"\n',
        ["reasons.toml:3:1", "reasons.write_faild", "unknown reason"],
    ),
    ("syntax.toml", "metric = \n", ["syntax.toml:1:", "invalid TOML"]),
    ("syntax.yaml", "metric: [\n", ["syntax.yaml:2:1", "invalid YAML"]),
]


@pytest.mark.parametrize(("name", "text", "parts"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_field_and_position(
    tmp_path: Path, name: str, text: str, parts: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        monitoring.load(path)
    for part in parts:
        assert part in str(e.value)


def test_bad_config_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[slo]\nobjective = 1.5\n")
    r = _cli(tmp_path, "--config", str(path))
    assert r.returncode == 2
    assert f"{path}:2:1: slo.objective: 1.5 is impossible" in r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_flag_names_the_flag(tmp_path: Path) -> None:
    r = _cli(tmp_path, "--reason-label", "1reason")
    assert r.returncode == 2
    assert "--reason-label: reason_label: '1reason' is not a label name" in r.stderr
    r = _cli(tmp_path, "--objective", "0")
    assert "--objective: slo.objective: 0.0 is impossible" in r.stderr
    assert not (tmp_path / "out").exists()


def test_flags_override_the_config(tmp_path: Path) -> None:
    r = _cli(
        tmp_path,
        "--config", str(EXAMPLE),
        "--metric", "asset_subtree_outcomes_total",
        "--selector", 'job="asset"',
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rules = (tmp_path / "out" / "alerts" / "teranode-subtree-data.rules.yaml").read_text()
    assert 'rate(asset_subtree_outcomes_total{job="asset"}[5m])' in rules
    assert "source" in rules


def test_cli_metric_and_reason_label_flags(tmp_path: Path) -> None:
    r = _cli(tmp_path, "--metric", "my_streams_total", "--reason-label", "outcome")
    assert r.returncode == 0, r.stderr
    rules = (tmp_path / "out" / "alerts" / "errclass.rules.yaml").read_text()
    assert "sum by (job, producer, outcome) (rate(my_streams_total[5m]))" in rules
    assert "job_producer_outcome:my_streams:rate5m" in rules


def test_partial_tables_keep_their_defaults() -> None:
    cfg = monitoring.from_mapping(
        {"alerts": {"deadline": {"threshold": 0.2}}, "reasons": {"ok": ["done", "cached"]}}
    )
    assert cfg.alerts.deadline.threshold == 0.2
    assert cfg.alerts.deadline.window == "5m"
    assert cfg.alerts.client_gone.threshold == 0.5
    assert cfg.reasons["ok"] == ("done", "cached")
    assert cfg.reasons["client_gone"] == ("client_gone",)


def test_write_is_atomic_and_skips_unchanged_files(tmp_path: Path) -> None:
    files = monitoring.render()
    written = monitoring.write(files, tmp_path)
    assert len(written) == len(files)
    before = {p: p.stat().st_ino for p in written}
    assert monitoring.write(files, tmp_path) == []
    changed = dict(files)
    changed["alerts/errclass.rules.yaml"] += "# changed\n"
    (rewritten,) = monitoring.write(changed, tmp_path)
    assert (
        rewritten.stat().st_ino != before[rewritten]
    )  # replaced by rename, not rewritten in place
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_write_failure_leaves_targets_untouched(tmp_path: Path) -> None:
    files = monitoring.render()
    monitoring.write(files, tmp_path)
    shutil.rmtree(tmp_path / "grafana" / "import")
    (tmp_path / "grafana" / "import").write_text("a file where a directory should be\n")
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    changed = {rel: text.replace("errclass", "errclass2") for rel, text in files.items()}
    with pytest.raises(OSError):
        monitoring.write(changed, tmp_path)  # staging grafana/import/... fails
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == snapshot  # grafana/errclass-outcomes.json, staged first, is untouched


def test_reason_flag_and_print_config_round_trip(tmp_path: Path) -> None:
    r = _cli(
        tmp_path,
        "--print-config",
        "--metric", "subtree_total",
        "--reason-label", "source",
        "--reason", "ok=on_demand_created,file_existed",
        "--reason", "write_failed=write_failed,creation_failed",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    printed = tmp_path / "printed.yaml"
    printed.write_text(r.stdout)
    cfg = monitoring.load(printed)
    assert cfg.reasons["ok"] == ("on_demand_created", "file_existed")
    assert cfg.reasons["client_gone"] == ("client_gone",)
    assert cfg.metric == "subtree_total"
    assert cfg == monitoring.from_mapping(monitoring.to_data(cfg))
    r = _cli(tmp_path, "--config", str(printed))
    assert r.returncode == 0, r.stderr
    rules = (tmp_path / "out" / "alerts" / "errclass.rules.yaml").read_text()
    assert 'source=~"write_failed|creation_failed|deadline_exceeded"' in rules
    r = _cli(tmp_path, "--reason", "okay=x")
    assert r.returncode == 2
    assert "--reason: reasons.okay: unknown reason" in r.stderr
