"""Helm values files, the files chart users edit, are read by their content and edited
in place like the rule files they hold: the prometheus chart's ``serverFiles`` (rule
files as YAML mappings) and ``ruleFiles`` (as strings), kube-prometheus-stack's
``additionalPrometheusRulesMap`` and older ``additionalPrometheusRules`` list, at the
top or under a subchart's key. The real-shape fixtures go through promtool."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from errclass.migrate import Selection, plan_paths
from errclass.migrate._files import FileResult, plan_text
from tests.support import errclass_cli, promtool_rules

REAL = Path(__file__).parent / "fixtures" / "migrate-real"
M = "stream_outcomes_total"
SPLIT = Selection((M,), mode="split")
PRESERVE = Selection((M,), mode="preserve")
FIXTURES = [
    "values-prometheus-chart.yaml",
    "values-kube-prometheus-stack.yaml",
    "values-umbrella-list.yaml",
]


# --- what the charts render: written here from the charts' templates, not from the code --


def _charts(values: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The values of each chart in *values*: the file's own, and each subchart's."""
    yield "", values
    for key, sub in values.items():
        if isinstance(sub, dict):
            yield f"{key}.", sub


def _rule_files(text: str) -> dict[str, Any]:
    """Every rule file the charts render from the values in *text*, as data, by where."""
    out: dict[str, Any] = {}
    for at, chart in _charts(yaml.safe_load(text)):
        for key in ("serverFiles", "additionalPrometheusRulesMap"):
            for name, rules in (chart.get(key) or {}).items():
                if isinstance(rules, dict) and rules.get("groups"):
                    out[f"{at}{key}/{name}"] = {"groups": rules["groups"]}
        for item in chart.get("additionalPrometheusRules") or []:
            out[f"{at}additionalPrometheusRules/{item['name']}"] = {"groups": item["groups"]}
        for name, rules in (chart.get("ruleFiles") or {}).items():
            out[f"{at}ruleFiles/{name}"] = yaml.safe_load(rules)
    return out


def _without_rules(text: str) -> dict[str, Any]:
    """The values in *text* with their rule files taken out: what must not change."""
    values: dict[str, Any] = yaml.safe_load(text)
    for _, chart in _charts(values):
        for key in ("serverFiles", "additionalPrometheusRulesMap"):
            for rules in (chart.get(key) or {}).values():
                if isinstance(rules, dict):
                    rules.pop("groups", None)
        for item in chart.get("additionalPrometheusRules") or []:
            item.pop("groups")
        chart.pop("ruleFiles", None)
    return values


def _promtool(files: list[Path], *flags: str) -> subprocess.CompletedProcess[str]:
    return promtool_rules(*files, flags=flags)


@pytest.mark.parametrize("sel", [PRESERVE, SPLIT], ids=["preserve", "split"])
@pytest.mark.parametrize("name", FIXTURES)
def test_values_files_are_migrated_like_their_rule_files_alone(
    name: str, sel: Selection, tmp_path: Path
) -> None:
    [r] = plan_paths([REAL / name], sel)
    assert not r.error and r.changed
    assert r.formats[0] == "Helm values"  # and a ruleFiles string's own "Prometheus rules"
    assert not [f.message for _, er in r.sites for f in er.findings if f.status == "skipped"]
    before, after = _rule_files(r.text), _rule_files(r.new_text)
    assert before and before.keys() == after.keys()
    changed = 0
    for where, rules in before.items():  # each rule file edited as it is edited alone
        alone = plan_text(yaml.safe_dump(rules), "yaml", sel, FileResult(Path(where)))
        assert after[where] == yaml.safe_load(alone.new_text), where
        changed += alone.changed
    assert changed
    assert len(r.sites) == sum(
        len(g["rules"]) for rules in before.values() for g in rules["groups"]
    )
    # what is not a rule expression stays byte for byte (settings, annotations with
    # {{ $labels.x }}, comments): every edit lies inside the span of an expr
    assert _without_rules(r.new_text) == _without_rules(r.text)
    spans = [(s.start, s.end) for s, _ in r.sites]
    ops = difflib.SequenceMatcher(None, r.text, r.new_text, autojunk=False).get_opcodes()
    for op, i1, i2, _, _ in ops:
        if op != "equal":
            assert any(a <= i1 and i2 <= b for a, b in spans), (op, r.text[i1 - 20 : i2 + 20])
    # each rule file in the migrated values loads in promtool
    files = []
    for i, rules in enumerate(after.values()):
        files.append(tmp_path / f"{i}.yaml")
        files[-1].write_text(yaml.safe_dump(rules, sort_keys=False))
    done = _promtool(files)
    assert done.returncode == 0, done.stdout + done.stderr
    # and a second run changes nothing
    path = tmp_path / name
    path.write_text(r.new_text)
    [again] = plan_paths([path], sel)
    assert not again.changed


def test_check_reports_each_expression_at_its_line(tmp_path: Path) -> None:
    lines = {}
    for name in FIXTURES:
        [r] = plan_paths([REAL / name], PRESERVE)
        text = r.text.splitlines()
        for site, _ in r.sites:
            assert text[r.line(site.start) - 1].lstrip().startswith("expr:"), site.location
            lines[site.location] = r.line(site.start)
    assert lines == {
        'serverFiles "alerting_rules.yml" group "streams" alert "StreamWritesFailing"': 24,
        'serverFiles "alerting_rules.yml" group "streams" alert "StreamErrorRatioHigh"': 32,
        'serverFiles "recording_rules.yml" group "streams.recording" '
        'record "job:stream_outcomes_failed:rate5m"': 52,
        'serverFiles "recording_rules.yml" group "streams.recording" '
        'record "job:stream_outcomes:rate5m"': 54,
        'ruleFiles "streams_sla.yml": group "streams.sla" alert "StreamsNotWritten"': 73,
        'additionalPrometheusRulesMap "streams" group "streams" alert "StreamWritesFailing"': 31,
        'additionalPrometheusRulesMap "streams" group "streams" '
        'record "job:stream_outcomes_error_ratio:rate5m"': 39,
        'additionalPrometheusRulesMap "streams-slo" group "streams.slo" '
        'alert "StreamErrorBudgetBurn"': 47,
        'kube-prometheus-stack.additionalPrometheusRules "streams" group "streams" '
        'alert "StreamWritesFailing"': 16,
        'kube-prometheus-stack.additionalPrometheusRules "streams" group "streams" '
        'record "job:stream_outcomes_failed:rate5m"': 21,
        'kube-prometheus-stack.additionalPrometheusRules "streams" group "streams" '
        'alert "StreamErrorRatioHigh"': 23,
    }
    # the CLI reports the same file:line
    path = tmp_path / FIXTURES[0]
    shutil.copy(REAL / FIXTURES[0], path)
    done = errclass_cli("check", str(path), "--metric", M, "--mode", "preserve", "--format", "json")
    assert done.returncode == 1, done.stdout + done.stderr
    found = {(f["location"], f["line"]) for f in json.loads(done.stdout)["findings"]}
    assert found and all(f["file"] == str(path) for f in json.loads(done.stdout)["findings"])
    assert found <= set(lines.items())


VALUES_WITHOUT_RULES = {
    # the prometheus chart's own defaults: every rule file empty
    "prometheus chart defaults": (
        "server:\n  retention: 15d\nserverFiles:\n  alerting_rules.yml: {}\n  alerts: {}\n"
        "  recording_rules.yml: {}\n  rules: {}\n  prometheus.yml:\n    rule_files:\n"
        "      - /etc/config/recording_rules.yml\nruleFiles: {}\n"
    ),
    "kube-prometheus-stack defaults": (
        "additionalPrometheusRulesMap: {}\ndefaultRules:\n  create: true\n"
        "  rules:\n    etcd: true\nprometheus:\n  prometheusSpec:\n    retention: 10d\n"
    ),
    "a values file of another chart": "replicaCount: 2\nimage:\n  repository: nginx\n",
}


@pytest.mark.parametrize(
    "text", list(VALUES_WITHOUT_RULES.values()), ids=list(VALUES_WITHOUT_RULES)
)
def test_a_values_file_without_rules_stays_ignored(text: str, tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(text)
    [r] = plan_paths([path], SPLIT)
    assert not r.error and not r.formats and not r.sites and not r.changed
    assert r.notes == ["not a dashboard or rule file: skipped"]


TEMPLATED_RULES = """\
groups:
- name: templated
  rules:
  - alert: Window
    expr: sum(rate(M{reason="write_failed", job="{{ .Values.job }}"}[{{ .Values.window }}])) > 1
  - record: Whole
    expr: '{{ .Values.streamsExpr }}'
  - record: Broken
    expr: sum(rate(M{reason="write_failed"}[5m])) {{ if .Values.byJob }} by (job) {{ end }}
  - record: Plain
    expr: sum(rate(M{reason="write_failed"}[5m]))
""".replace("M{", M + "{")


def _indent(text: str, by: int) -> str:
    return "".join(" " * by + line for line in text.splitlines(True))


def test_go_template_text_in_an_expr_is_reported_as_in_a_rule_file(tmp_path: Path) -> None:
    """``{{ .Values.x }}`` in an expr is masked and reported exactly as it is in a plain
    rule file (the charts insert rule values as they are: there it stays text)."""
    values = "serverFiles:\n  alerting_rules.yml:\n" + _indent(TEMPLATED_RULES, 4)
    path = tmp_path / "values.yaml"
    path.write_text(values)
    alone = plan_text(TEMPLATED_RULES, "yaml", PRESERVE, FileResult(Path("alone")))
    [r] = plan_paths([path], PRESERVE)
    assert r.formats == ["Helm values"]

    def report(res: FileResult) -> list[tuple[str, str, str, str]]:
        return [
            (s.location.split("group ", 1)[1], f.status, f.old, f.new)
            for s, er in res.sites
            for f in er.findings
        ]

    assert report(r) == report(alone)
    statuses: dict[str, set[str]] = {}
    for where, status, _, _ in report(r):
        statuses.setdefault(where.split()[-1], set()).add(status)
    assert statuses['"Broken"'] == {"skipped"}  # not PromQL once the template is masked
    assert statuses['"Window"'] == {"changed"}  # edited around the template
    assert 'client_gone", job="{{ .Values.job }}"}[{{ .Values.window }}])) > 1' in r.new_text
    assert '"Whole"' not in statuses  # no selected metric in it: nothing to say
    assert r.new_text == _indent_values(alone.new_text)


def _indent_values(rules: str) -> str:
    return "serverFiles:\n  alerting_rules.yml:\n" + _indent(rules, 4)


def test_migrate_write_then_check_end_to_end(tmp_path: Path) -> None:
    """The CLI as a user runs it on values files: migrate --write, then check finds
    nothing left, and the rule groups of the written values load in promtool."""
    for name in FIXTURES:
        shutil.copy(REAL / name, tmp_path / name)
    args = [str(tmp_path), "--metric", M, "--mode", "preserve"]
    done = errclass_cli("migrate", *args, "--write")
    assert done.returncode == 1, done.stdout + done.stderr  # changes were made
    assert done.stderr == ""
    assert all((tmp_path / n).read_text() != (REAL / n).read_text() for n in FIXTURES[:2])
    check = errclass_cli("check", *args, "--format", "json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["findings"] == [] and report["errors"] == [] and report["ignored"] == []
    assert report["summary"]["files_to_change"] == 0
    assert report["summary"]["expressions"] == 11
    files = []
    for name in FIXTURES:
        for i, rules in enumerate(_rule_files((tmp_path / name).read_text()).values()):
            files.append(tmp_path / f"{name}.{i}.rules.yaml")
            files[-1].write_text(yaml.safe_dump(rules, sort_keys=False))
    promtool = _promtool(files, "--lint-fatal")
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    assert promtool.stdout.count("SUCCESS") == len(files) == 6


HELMRELEASE = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: monitoring
  namespace: flux-system
spec:
  interval: 10m
  chart:
    spec:
      chart: kube-prometheus-stack
      version: "77.x"
      sourceRef:
        kind: HelmRepository
        name: prometheus-community
  values:
"""


@pytest.mark.parametrize("sel", [PRESERVE, SPLIT], ids=["preserve", "split"])
@pytest.mark.parametrize("name", FIXTURES)
def test_values_inline_in_a_flux_helmrelease_are_edited_as_in_the_values_file(
    name: str, sel: Selection, tmp_path: Path
) -> None:
    values = (REAL / name).read_text()
    path = tmp_path / "release.yaml"
    path.write_text(HELMRELEASE + _indent(values, 4))
    [plain] = plan_paths([REAL / name], sel)
    [r] = plan_paths([path], sel)
    assert r.formats == plain.formats and r.changed
    assert r.new_text == HELMRELEASE + _indent(plain.new_text, 4)
    assert [s.location for s, _ in r.sites] == [
        f'HelmRelease "monitoring" {s.location}' for s, _ in plain.sites
    ]
    offset = HELMRELEASE.count("\n")
    assert [r.line(s.start) for s, _ in r.sites] == [
        plain.line(s.start) + offset for s, _ in plain.sites
    ]


def test_victoria_metrics_k8s_stack_rules_map_is_read(tmp_path: Path) -> None:
    """victoria-metrics-k8s-stack: additionalVictoriaMetricsMap, the same shape as
    kube-prometheus-stack's map (each entry becomes a VMRule)."""
    kps_key, vm_key = "additionalPrometheusRulesMap:", "additionalVictoriaMetricsMap:"
    values = (REAL / "values-kube-prometheus-stack.yaml").read_text()
    assert values.count(kps_key) == 1
    path = tmp_path / "values.yaml"
    path.write_text(values.replace(kps_key, vm_key))
    [kps] = plan_paths([REAL / "values-kube-prometheus-stack.yaml"], SPLIT)
    [r] = plan_paths([path], SPLIT)
    assert r.formats == ["Helm values"] and r.changed
    assert r.new_text == kps.new_text.replace(kps_key, vm_key)
