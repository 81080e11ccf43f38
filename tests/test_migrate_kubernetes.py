"""Issue 15 item 2: dashboards inside Kubernetes objects (ConfigMap, ConfigMapList,
grafana-operator's GrafanaDashboard) are read and edited in place, byte-minimally:
JSON inside a YAML (or JSON) string, in each scalar style a file can use. Each case is
verified by reading the edited file back with a YAML/JSON parser.

A plain YAML scalar cannot hold a dashboard (JSON starts with ``{``, which opens a
flow mapping), so plain is not among the styles; a flow mapping in ``data`` is not a
valid ConfigMap and is listed as ignored."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from errclass._cli import main
from errclass.migrate import Selection, plan_paths
from errclass.migrate._files import FileResult, plan_text

REAL = Path(__file__).parent / "fixtures" / "migrate-real"
M = "stream_outcomes_total"
EXPR = f'sum(rate({M}{{reason!="ok"}}[5m])) / sum(rate({M}[5m]))'
# split mode: both sides of the ratio exclude client_gone
OLD = (f'{M}{{reason!="ok"}}', f"{M}[5m]")
NEW = (f'{M}{{reason!="ok", reason!="client_gone"}}', f'{M}{{reason!="client_gone"}}[5m]')
SPLIT = Selection((M,), mode="split")


def _dashboard() -> dict[str, Any]:
    return {
        "panels": [
            {
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "id": 1,
                "targets": [{"expr": EXPR, "refId": "A"}],
                "title": "Error ratio",
                "type": "timeseries",
            }
        ],
        "title": "Streams",
        "uid": "streams",
    }


def _indent(text: str, by: int) -> str:
    return "".join(" " * by + line if line.strip() else line for line in text.splitlines(True))


def _j(s: str) -> str:  # a JSON string body
    return json.dumps(s)[1:-1]


def _literal(inner: str, header: str) -> str:
    return f"  d.json: {header}\n{_indent(inner, 4)}"


def _folded(inner: str) -> str:
    # the operator's examples: "{" and "}" at the block's indentation, the rest deeper
    return "  d.json: >\n" + _indent(inner, 4)


def _configmap(scalar: str) -> str:
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dash\ndata:\n"
    return head + scalar + ("" if scalar.endswith("\n") else "\n")


STYLES: dict[str, Any] = {
    "literal": lambda inner: _literal(inner + "\n", "|"),
    "literal strip": lambda inner: _literal(inner, "|-"),
    "folded": _folded,
    "double-quoted": lambda inner: "  d.json: " + json.dumps(inner),
    "double-quoted, folded lines": lambda inner: _indent(
        yaml.dump({"d.json": inner}, default_style='"', width=50), 2
    ),
    "single-quoted": lambda inner: "  d.json: '" + _indent(inner, 4).lstrip() + "'",
    "single-quoted, folded lines": lambda inner: _indent(
        yaml.dump({"d.json": inner}, default_style="'", width=50), 2
    ),
}


def _encode_for(text: str, s: str) -> str:
    """How the JSON text *s* is written in the YAML scalar of the file *text* (PyYAML
    writes a single-quoted style with line breaks as double-quoted)."""
    quote = re.search(r"d\.json['\"]?:\s*(\S)", text)
    assert quote
    if quote.group(1) == '"':
        return s.replace("\\", "\\\\").replace('"', '\\"')
    if quote.group(1) == "'":
        return s.replace("'", "''")
    return s


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("pretty", [True, False], ids=["pretty", "compact"])
def test_a_configmap_dashboard_is_edited_in_every_scalar_style(
    style: str, pretty: bool, tmp_path: Path
) -> None:
    inner = json.dumps(_dashboard(), indent=2 if pretty else None)
    text = _configmap(STYLES[style](inner))
    assert json.loads(yaml.safe_load(text)["data"]["d.json"]) == _dashboard()  # a right fixture
    path = tmp_path / "cm.yaml"
    path.write_text(text)
    [r] = plan_paths([path], SPLIT)
    assert not r.error
    assert "grafana dashboard" in r.formats
    # read back: the string holds the dashboard as migrating the JSON alone gives it
    decoded = yaml.safe_load(r.new_text)["data"]["d.json"]
    alone = plan_text(
        yaml.safe_load(text)["data"]["d.json"], "json", SPLIT, FileResult(Path("alone"))
    )
    assert alone.changed
    assert decoded == alone.new_text
    # byte-minimal: only the matcher text was added, encoded for this style
    added = [
        (_encode_for(text, _j(o)), _encode_for(text, _j(n))) for o, n in zip(OLD, NEW, strict=True)
    ]
    if "folded lines" in style:  # a fragment may be broken over lines: insertions only
        ops = difflib.SequenceMatcher(None, text, r.new_text, autojunk=False).get_opcodes()
        assert {op for op, *_ in ops} == {"equal", "insert"}
        assert len(r.new_text) - len(text) == sum(len(n) - len(o) for o, n in added)
    else:
        want = text
        for a, b in added:
            assert want.count(a) == 1, (style, a)
            want = want.replace(a, b)
        assert r.new_text == want
    # and a second run changes nothing
    path.write_text(r.new_text)
    [again] = plan_paths([path], SPLIT)
    assert again.new_text == again.text
    assert any(s.location.startswith('ConfigMap "dash" data "d.json": ') for s, _ in r.sites)


def test_a_configmap_in_a_json_file_is_edited(tmp_path: Path) -> None:
    """kubectl get configmap -o json: JSON text inside a JSON string."""
    inner = json.dumps(_dashboard(), indent=2)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dash"}}
    cm["data"] = {"d.json": inner}
    text = json.dumps(cm, indent=4)
    path = tmp_path / "cm.json"
    path.write_text(text)
    [r] = plan_paths([path], SPLIT)
    want = text
    for old, new in zip(OLD, NEW, strict=True):
        want = want.replace(_j(_j(old)), _j(_j(new)))
    assert want != text
    assert r.new_text == want
    assert json.loads(json.loads(r.new_text)["data"]["d.json"]) == json.loads(
        plan_text(inner, "json", SPLIT, FileResult(Path("x"))).new_text
    )


def test_the_configmaplist_of_kube_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    path = REAL / "configmaplist-dashboards.yaml"
    [r] = plan_paths([path], SPLIT)
    assert not r.error
    assert r.formats.count("grafana dashboard") == 3
    doc = yaml.safe_load(r.new_text)
    old = yaml.safe_load(r.text)
    for item, before in zip(doc["items"], old["items"], strict=True):
        for key, value in item["data"].items():
            if not key.endswith(".json"):
                assert value == before["data"][key]
                continue
            exprs = [t["expr"] for p in json.loads(value)["panels"] for t in p["targets"]]
            was = [
                t["expr"] for p in json.loads(before["data"][key])["panels"] for t in p["targets"]
            ]
            for e, w in zip(exprs, was, strict=True):
                if M in w and "!=" in w:
                    assert e.count('reason!="client_gone"') == 2, e
                else:
                    assert e == w
    locations = [s.location for s, _ in r.sites]
    assert (
        'ConfigMap "grafana-dashboard-streams" data "streams.json": panel "Error ratio" query A'
        in locations
    )
    # the line reported is the line of the expression in the file itself
    lines = r.text.splitlines()
    for site, _ in r.sites:
        assert '"expr"' in lines[r.line(site.start) - 1].replace('\\"', '"')
    assert main(["migrate", str(path), "--metric", M, "--mode", "split"]) == 1
    out = capsys.readouterr().out
    assert "+" in out and "client_gone" in out


def test_a_grafana_operator_dashboard_is_edited() -> None:
    path = REAL / "grafanadashboard.yaml"
    [r] = plan_paths([path], Selection((M,), mode="preserve"))
    assert r.formats == ["grafana dashboard"]
    spec = yaml.safe_load(r.new_text)["spec"]
    [expr] = [t["expr"] for p in json.loads(spec["json"])["panels"] for t in p["targets"]]
    assert expr == f'sum by (job) (rate({M}{{reason=~"write_failed|client_gone"}}[5m]))'
    assert r.new_text == r.text.replace(
        'reason=\\"write_failed\\"', 'reason=~\\"write_failed|client_gone\\"'
    )


def test_a_configmap_without_a_dashboard_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(
        _configmap('  other.json: \'{"a": 1}\'\n  bad.json: "{not json"\n  flow.json: {a: 1}')
    )
    [r] = plan_paths([path], SPLIT)
    assert not r.error
    assert not r.changed
    text = "\n".join(r.notes)
    assert 'data "other.json"' in text
    assert 'data "bad.json"' in text
    assert 'data "flow.json"' in text
