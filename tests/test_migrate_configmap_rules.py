"""Prometheus rule files inside Kubernetes ConfigMaps (``data["x.yaml"|"x.yml"|"x.rules"]``,
and the prometheus chart's legacy ``alerts`` / ``rules`` keys) are read and edited in
place, byte-minimally: YAML inside a YAML (or JSON) string, in each scalar style a file
can use, and each style of the inner ``expr``. Every case is read back with a YAML
parser; the real-shape fixtures also go through promtool.

A plain YAML scalar cannot hold a rule file (``key: value`` inside a plain scalar is a
mapping, and a plain scalar cannot start with ``{``), so plain is not among the outer
styles: such a value is listed as not a rule file."""

from __future__ import annotations

import difflib
import json
import shutil
from collections.abc import Callable, Iterator
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
# split mode: both sides of the ratio exclude client_gone (two insertions)
EXPR = f'sum(rate({M}{{reason!="ok"}}[5m])) / sum(rate({M}[5m]))'


def _indent(text: str, by: int) -> str:
    return "".join(" " * by + line if line.strip() else line for line in text.splitlines(True))


def _inner_expr(style: str) -> str:
    """``expr:`` and its value in *style*, inside a rule at indentation 4."""
    broken = EXPR.replace(" / ", "\n          / ")
    return {
        "plain": EXPR,
        "double-quoted": json.dumps(EXPR),
        "single-quoted": "'" + EXPR.replace("'", "''") + "'",
        "literal": "|\n          " + broken,
        "folded": ">\n          " + broken,
    }[style]


def _rules(style: str) -> str:
    return (
        "groups:\n  - name: streams\n    rules:\n      - record: job:errors:ratio\n"
        f"        expr: {_inner_expr(style)}\n"
    )


OUTER: dict[str, Callable[[str], str]] = {
    "literal": lambda inner: "  r.yaml: |\n" + _indent(inner, 4),
    "literal strip": lambda inner: "  r.yaml: |-\n" + _indent(inner, 4),
    "literal keep": lambda inner: "  r.yaml: |+\n" + _indent(inner, 4) + "\n",
    # only "groups:" at the block's indentation: the deeper lines keep their breaks
    "folded": lambda inner: "  r.yaml: >\n" + _indent(inner, 4),
    "double-quoted": lambda inner: "  r.yaml: " + json.dumps(inner) + "\n",
    "double-quoted, folded lines": lambda inner: _indent(
        yaml.dump({"r.yaml": inner}, default_style='"', width=40), 2
    ),
    "single-quoted, folded lines": lambda inner: _indent(
        yaml.dump({"r.yaml": inner}, default_style="'", width=40), 2
    ),
}


def _configmap(data: str) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rules\ndata:\n" + data


def _encode_outer(style: str, s: str) -> str:
    """How the inner text *s* is written in the outer scalar (PyYAML writes the
    single-quoted style of a value with line breaks as double-quoted)."""
    if style.startswith(("double", "single")):
        return s.replace("\\", "\\\\").replace('"', '\\"')
    return s


@pytest.mark.parametrize(
    "inner_style", ["plain", "double-quoted", "single-quoted", "literal", "folded"]
)
@pytest.mark.parametrize("outer", list(OUTER))
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_configmap_rule_file_is_edited_in_every_scalar_style(
    newline: str, outer: str, inner_style: str, tmp_path: Path
) -> None:
    text = _configmap(OUTER[outer](_rules(inner_style))).replace("\n", newline)
    inner = yaml.safe_load(text)["data"]["r.yaml"]
    assert yaml.safe_load(inner)["groups"][0]["rules"][0]["expr"].split() == EXPR.split()
    path = tmp_path / "cm.yaml"
    path.write_bytes(text.encode())
    [r] = plan_paths([path], SPLIT)
    assert not r.error
    assert r.formats == ["Prometheus rules"]
    assert not [f.message for _, er in r.sites for f in er.findings if f.status == "skipped"]
    # read back: the string holds the rule file as migrating the rule file alone gives it
    alone = plan_text(inner, "yaml", SPLIT, FileResult(Path("alone")))
    assert alone.changed and len(alone.edits) == 2
    assert yaml.safe_load(r.new_text)["data"]["r.yaml"] == alone.new_text
    # byte-minimal: the two matchers inserted, encoded for the inner and the outer style
    ops = difflib.SequenceMatcher(None, text, r.new_text, autojunk=False).get_opcodes()
    assert {op for op, *_ in ops} == {"equal", "insert"}
    added = sum(len(_encode_outer(outer, new)) for _, _, new in alone.edits)
    assert len(r.new_text) - len(text) == added
    assert r.new_text.count("\n") == r.new_text.count(newline)  # line breaks kept
    # reported at the line of its expr in the outer file
    [(site, _)] = r.sites
    assert (
        site.location
        == 'ConfigMap "rules" data "r.yaml": group "streams" record "job:errors:ratio"'
    )
    assert "expr" in r.text.splitlines()[r.line(site.start) - 1]
    # and a second run changes nothing
    path.write_bytes(r.new_text.encode())
    [again] = plan_paths([path], SPLIT)
    assert not again.changed


def test_each_rule_is_reported_at_its_line_in_the_configmap() -> None:
    [r] = plan_paths([REAL / "configmap-prometheus-chart.yaml"], PRESERVE)
    got = {site.location.rsplit(" ", 1)[-1].strip('"'): r.line(site.start) for site, _ in r.sites}
    assert got == {
        "StreamWritesFailing": 27,
        "StreamErrorRatioHigh": 34,  # expr: |-
        "StreamsNotWritten": 46,
        "job:stream_outcomes_failed:rate5m": 67,
        "job:stream_outcomes:rate5m": 69,
    }


# --- the real shapes: the prometheus chart, kube-thanos, kubectl, kube-prometheus, Mimir -----

FIXTURES = [
    "configmap-prometheus-chart.yaml",
    "configmap-thanos-ruler.yaml",
    "kubectl-list-rules.yaml",
    "configmaplist-rules.yaml",
    "configmap-rules.json",
]


def _objects(text: str, json_file: bool) -> Iterator[dict[str, Any]]:
    docs = [json.loads(text)] if json_file else list(yaml.safe_load_all(text))
    for doc in docs:
        if doc and doc.get("kind") in ("List", "ConfigMapList"):
            yield from doc["items"]
        elif doc:
            yield doc


def _rule_files(text: str, json_file: bool) -> dict[str, str]:
    """Every rule file in the objects of *text*, by where it is: ConfigMap data values
    that hold groups, and PrometheusRule specs (as promtool reads them)."""
    out = {}
    for obj in _objects(text, json_file):
        name = obj["metadata"]["name"]
        if obj["kind"] == "PrometheusRule":
            out[f"PrometheusRule/{name}"] = yaml.safe_dump(
                {"groups": obj["spec"]["groups"]}, sort_keys=False
            )
            continue
        for key, value in obj["data"].items():
            if isinstance(yaml.safe_load(value), dict) and "groups" in yaml.safe_load(value):
                out[f"{name}/{key}"] = value
    return out


@pytest.mark.parametrize("sel", [PRESERVE, SPLIT], ids=["preserve", "split"])
@pytest.mark.parametrize("name", FIXTURES)
def test_real_shapes_are_migrated_like_their_rule_files_alone(
    name: str, sel: Selection, tmp_path: Path
) -> None:
    path = REAL / name
    json_file = name.endswith(".json")
    [r] = plan_paths([path], sel)
    assert not r.error and r.changed
    assert not [f.message for _, er in r.sites for f in er.findings if f.status == "skipped"]
    before, after = _rule_files(r.text, json_file), _rule_files(r.new_text, json_file)
    assert before and before.keys() == after.keys()
    changed = 0
    for where, rules in before.items():
        alone = plan_text(rules, "yaml", sel, FileResult(Path(where)))
        if where.startswith("PrometheusRule/"):  # re-dumped: compared as data
            assert yaml.safe_load(after[where]) == yaml.safe_load(alone.new_text), where
        else:
            assert after[where] == alone.new_text, where
        changed += alone.changed
    assert changed
    # what is not a rule file stays byte for byte
    for old, new in zip(_objects(r.text, json_file), _objects(r.new_text, json_file), strict=True):
        for key, value in old.get("data", {}).items():
            if f"{old['metadata']['name']}/{key}" not in before:
                assert new["data"][key] == value
    # every rule file in the migrated file still loads in promtool
    files = []
    for i, rules in enumerate(after.values()):
        files.append(tmp_path / f"{i}.yaml")
        files[-1].write_text(rules)
    done = promtool_rules(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    # the line reported is the line of the expression in the file itself
    lines = r.text.splitlines()
    for site, _ in r.sites:
        assert "expr" in lines[r.line(site.start) - 1], (site.location, r.line(site.start))


@pytest.mark.parametrize("kind", ["List", "ConfigMapList"])
def test_prometheus_rules_in_a_list_are_read(kind: str, tmp_path: Path) -> None:
    """kubectl get prometheusrules -o yaml: a List of PrometheusRule resources (a
    ConfigMapList is read item by item the same way)."""
    text = (REAL / "kubectl-list-rules.yaml").read_text()
    path = tmp_path / "list.yaml"
    path.write_text(text.replace("\nkind: List\n", f"\nkind: {kind}\n"))
    assert path.read_text().count(f"\nkind: {kind}\n") == 1
    [r] = plan_paths([path], PRESERVE)
    assert r.formats.count("PrometheusRule") == 1
    assert r.formats.count("Prometheus rules") == 2
    locations = [s.location for s, _ in r.sites]
    assert 'PrometheusRule "streams" group "streams" alert "StreamWritesFailing"' in locations
    new = yaml.safe_load(r.new_text)["items"][0]["spec"]["groups"][0]["rules"][0]["expr"]
    assert new == f'sum by (job) (rate({M}{{reason=~"write_failed|client_gone"}}[5m])) > 1'


def test_what_is_not_a_rule_file_is_listed_or_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(
        _configmap(
            '  allow-snippet-annotations: "false"\n'  # a setting: not a document, no note
            "  rules: |\n    {}\n"  # the chart's empty legacy key: no note
            "  prometheus.yml: |\n    global:\n      scrape_interval: 1m\n"
            "  plain.yaml: groups\n"
            "  bad.yaml: |\n    groups: [\n"
            "  seq.rules: |\n    - a\n"
            "  recording_rules.yml: |\n    {}\n"  # the chart's default: an empty file
        )
    )
    [r] = plan_paths([path], SPLIT)
    assert not r.error and not r.changed and not r.formats
    notes = "\n".join(r.notes)
    for key in ("prometheus.yml", "plain.yaml", "seq.rules"):
        assert f'data "{key}": not a dashboard or rule file: skipped' in notes
    assert 'data "bad.yaml": not valid YAML: skipped' in notes
    assert 'data "recording_rules.yml": empty: skipped' in notes
    assert "allow-snippet-annotations" not in notes and 'data "rules"' not in notes
    assert len(r.notes) == 5


def test_a_legacy_key_without_an_extension_is_read_when_it_holds_groups(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    rules = f'groups:\n- name: g\n  rules:\n  - record: r\n    expr: sum({M}{{reason!="ok"}})\n'
    path.write_text(_configmap("  alerts: |\n" + _indent("# from values.yaml\n" + rules, 4)))
    [r] = plan_paths([path], SPLIT)
    assert r.formats == ["Prometheus rules"]
    assert r.new_text == r.text.replace('reason!="ok"', 'reason!="ok", reason!="client_gone"')


def test_migrate_write_then_check_end_to_end(tmp_path: Path) -> None:
    """The CLI as a user runs it: migrate --write, then check finds nothing left, and
    each rule file in the written files loads in promtool."""
    for name in FIXTURES:
        shutil.copy(REAL / name, tmp_path / name)
    want = {r.path: r.new_text for r in plan_paths([tmp_path], PRESERVE)}
    args = [str(tmp_path), "--metric", M, "--mode", "preserve"]
    done = errclass_cli("migrate", *args, "--write")
    assert done.returncode == 1, done.stdout + done.stderr  # changes were made
    assert done.stderr == ""
    for path, text in want.items():
        assert path.read_text() == text
        assert text != (REAL / path.name).read_text()
    check = errclass_cli("check", *args, "--format", "json")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["findings"] == [] and report["errors"] == []
    assert report["summary"]["files_to_change"] == 0
    assert report["summary"]["expressions"] >= 15
    files = []
    for name in FIXTURES:
        for i, rules in enumerate(
            _rule_files((tmp_path / name).read_text(), name.endswith(".json")).values()
        ):
            files.append(tmp_path / f"{name}.{i}.rules.yaml")
            files[-1].write_text(rules)
    promtool = promtool_rules(*files, flags=("--lint-fatal",))
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    assert promtool.stdout.count("SUCCESS") == len(files) >= 9


def test_grafana_sidecar_alerting_files_in_a_configmap_are_read(tmp_path: Path) -> None:
    """Grafana's sidecar loads alerting provisioning files from ConfigMaps too."""
    rules = (Path(__file__).parent / "fixtures" / "migrate" / "grafana-alerting.yaml").read_text()
    path = tmp_path / "cm.yaml"
    path.write_text(_configmap("  streams-alerts.yaml: |\n" + _indent(rules, 4)))
    [r] = plan_paths([path], PRESERVE)
    alone = plan_text(rules, "yaml", PRESERVE, FileResult(Path("alone")))
    assert r.formats == alone.formats == ["Grafana alerting provisioning"]
    assert alone.changed
    assert yaml.safe_load(r.new_text)["data"]["streams-alerts.yaml"] == alone.new_text
