"""errclass migrate/check on whole files: every format, both modes, byte-exact outputs,
real dashboards untouched, errors, and atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from errclass._cli import main
from errclass.migrate import Selection, WriteError, plan_paths, write_all
from errclass.migrate._documents import load
from errclass.migrate._expr import apply_edits
from errclass.migrate._formats import extract
from errclass.migrate._tree import parse as _parse
from tests.support import shared_fixture

FIXTURES = Path(__file__).parent / "fixtures" / "migrate"
M = "stream_outcomes_total"
SEED = "teranode_asset_repository_subtree_data_created_total"
STREAM_FILES = [
    "dashboard-classic.json",
    "dashboard-v2.json",
    "dashboard-v2.yaml",
    "rules.yaml",
    "prometheusrule.yaml",
    "mimir.yaml",
    "grafana-alerting.yaml",
    "sloth.yaml",
]


# Files with nothing to rewrite in a mode (split mode keeps reason="write_failed").
UNCHANGED = {
    ("preserve", "sloth.yaml"),
    ("split", "dashboard-v2.yaml"),
    ("split", "grafana-alerting.yaml"),
    ("split", "mimir.yaml"),
}


def _selection(name: str, mode: str) -> Selection:
    if name.startswith("seed"):
        return Selection((SEED,), label="source", mode=mode)
    return Selection((M,), mode=mode)


@pytest.mark.parametrize("mode", ["preserve", "split"])
@pytest.mark.parametrize("name", [*STREAM_FILES, "seed-rules.yaml"])
def test_every_format_migrates_to_the_expected_bytes(name: str, mode: str) -> None:
    sel = _selection(name, mode)
    [result] = plan_paths([FIXTURES / name], sel)
    assert not result.error
    expected = (FIXTURES / "expected" / mode / name).read_text()
    assert result.new_text == expected
    assert (result.new_text == result.text) == ((mode, name) in UNCHANGED)
    findings = [f for _, r in result.sites for f in r.findings]
    assert {f.status for f in findings} <= {"changed", "retune", "manual"}
    # the only manual items are per-series results that keep the reason label
    assert all("keeps the reason label" in f.message for f in findings if f.status == "manual")
    # migrating the output again changes nothing: the edit is a fixed point
    again = plan_paths([FIXTURES / "expected" / mode / name], sel)[0]
    assert again.new_text == again.text


def _outside_sites(text: str, kind: str) -> str:
    sites = extract(load(text, kind)).sites
    parts, pos = [], 0
    for site in sorted(sites, key=lambda s: s.start):
        parts.append(text[pos : site.start])
        pos = site.end
    return "\x00".join([*parts, text[pos:]])


def test_nothing_outside_the_expressions_changes() -> None:
    """Key order, escapes, comments, quoting, block scalar headers, indentation: every
    byte outside the expression strings is the original's."""
    for mode in ("preserve", "split"):
        for name in STREAM_FILES:
            [r] = plan_paths([FIXTURES / name], _selection(name, mode))
            kind = "json" if name.endswith(".json") else "yaml"
            assert _outside_sites(r.new_text, kind) == _outside_sites(r.text, kind)
            for _, er in r.sites:
                if er.changed:  # and inside, only the edited spans of the expression
                    assert er.new_text == apply_edits(er.text, er.edits)


def test_locations_name_panels_rows_variables_and_rules() -> None:
    [r] = plan_paths([FIXTURES / "dashboard-classic.json"], Selection((M,), mode="split"))
    where = {site.location for site, er in r.sites if er.changed}
    assert where == {
        'panel "Error ratio" query A',
        'panel "Error ratio" query B',
        'row "Details" / panel "Outcomes other than write_failed" query A',
    }
    # the Loki target is not PromQL and is never read
    assert all("logs" not in site.location for site, _ in r.sites)
    [r] = plan_paths([FIXTURES / "prometheusrule.yaml"], Selection((M,)))
    assert r.notes == ["document 3: not a dashboard or rule file: skipped"]
    assert r.sites[0][0].location == (
        'document 1: PrometheusRule "streaming-alerts" group "streaming.alerts" '
        'alert "StreamWriteFailuresHigh"'
    )


@pytest.mark.parametrize(
    "name", ["teranode-overview-dashboard.json", "teranode-batch-index-dashboard.json"]
)
@pytest.mark.parametrize("mode", ["preserve", "split"])
def test_real_dashboards_come_out_byte_identical_with_every_expression_parsed(
    name: str, mode: str
) -> None:
    path = shared_fixture("teranode", name)
    [r] = plan_paths([path], Selection((SEED,), label="source", mode=mode))
    assert not r.error and r.formats == ["grafana dashboard"]
    assert r.new_text == path.read_text() == r.text
    dashboard = json.loads(r.text)
    targets = [
        t
        for p in dashboard["panels"]
        for q in [p, *p.get("panels", [])]
        for t in q.get("targets", [])
        if "expr" in t
    ]
    assert len(r.sites) >= len(targets) > 0
    for site, er in r.sites:
        assert er.findings == [], (site.location, er.findings)
        _parse(site.expr or "")  # raises if any expression was not read


def test_real_dashboard_edited_on_a_label_it_really_uses() -> None:
    """Pretend the split lives in the overview dashboard's ``service`` label: the one
    selector with a literal regex is edited in place, selectors that depend on the
    ``$srvc`` variable are reported, not guessed, and nothing else moves."""
    path = shared_fixture("teranode", "teranode-overview-dashboard.json")
    sel = Selection(("teranode_.*",), label="service", old="tx-blaster-service", split=("canary",))
    [r] = plan_paths([path], sel)
    changed = [(site.location, er.new_text) for site, er in r.sites if er.changed]
    assert changed == [
        (
            'panel "TX Blaster Generated Transaction" query C',
            'sum(teranode_tx_blaster_workers{service=~"tx-blaster-service.*|canary",'
            'namespace=~"$namespace"})',
        )
    ]
    statuses = {f.status for _, er in r.sites for f in er.findings}
    assert statuses == {"changed", "manual"}
    assert _outside_sites(r.new_text, "json") == _outside_sites(r.text, "json")
    old, new = json.loads(r.text), json.loads(r.new_text)
    assert [p["title"] for p in old["panels"]] == [p["title"] for p in new["panels"]]


def test_invalid_files_are_errors_with_positions_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "rules.yaml"
    shutil.copy(FIXTURES / "rules.yaml", good)
    (tmp_path / "broken.json").write_text('{"panels": [\n  {"targets": [}\n]}\n')
    (tmp_path / "broken.yaml").write_text("groups:\n  - name: x\n   rules: [\n")
    before = good.read_bytes()
    code = main(["migrate", str(tmp_path), "--metric", M, "--write"])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.json: invalid JSON at line 2 column" in err
    assert "broken.yaml: invalid YAML at line" in err
    assert "nothing written" in err
    assert good.read_bytes() == before


def test_dry_run_then_write_then_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in STREAM_FILES:
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("reason=write_failed\n")
    snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    assert main(["migrate", str(tmp_path), "--metric", M]) == 1
    out = capsys.readouterr().out
    assert f"--- {tmp_path}/rules.yaml" in out
    new = 'expr: sum by (job) (rate(stream_outcomes_total{reason=~"write_failed|client_gone"}[5m]))'
    assert f"+        {new}" in out
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == snapshot  # dry run

    assert main(["migrate", str(tmp_path), "--metric", M, "--write", "--backup"]) == 1
    assert "wrote 7 file(s)" in capsys.readouterr().out
    for name in STREAM_FILES:
        assert (tmp_path / name).read_text() == (
            FIXTURES / "expected" / "preserve" / name
        ).read_text()
    assert (tmp_path / "rules.yaml.bak").read_bytes() == snapshot["rules.yaml"]
    assert not list(tmp_path.glob(".*errclass-tmp"))

    assert main(["migrate", str(tmp_path), "--metric", M]) == 0
    # a second --backup would overwrite the first backups: refused, nothing written
    (tmp_path / "rules.yaml").write_bytes(snapshot["rules.yaml"])
    assert main(["migrate", str(tmp_path), "--metric", M, "--write", "--backup"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "rules.yaml").read_bytes() == snapshot["rules.yaml"]


def test_write_is_all_or_none(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    shutil.copy(FIXTURES / "rules.yaml", a)
    shutil.copy(FIXTURES / "mimir.yaml", b)
    results = plan_paths([a, b], Selection((M,)))
    assert all(r.changed for r in results)
    b.write_text(b.read_text() + "# edited meanwhile\n")
    with pytest.raises(WriteError, match="changed since it was read"):
        write_all(results)
    assert a.read_bytes() == (FIXTURES / "rules.yaml").read_bytes()


def test_crlf_and_unicode_are_kept(tmp_path: Path) -> None:
    text = (FIXTURES / "rules.yaml").read_text().replace("Streams are", "Flüsse sind")
    path = tmp_path / "crlf.yaml"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    [r] = plan_paths([path], Selection((M,)))
    want = (FIXTURES / "expected" / "preserve" / "rules.yaml").read_text()
    want = want.replace("Streams are", "Flüsse sind").replace("\n", "\r\n")
    assert r.new_text == want


def test_unrecognised_files_are_reported_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "package.json").write_text('{"name": "x", "expr": "m{reason=\\"write_failed\\"}"}')
    (tmp_path / "values.yaml").write_text("replicas: 2\n")
    (tmp_path / "README.md").write_text("m{reason='write_failed'}\n")
    assert main(["migrate", str(tmp_path), str(tmp_path / "README.md"), "--metric", M]) == 0
    out = capsys.readouterr().out
    assert "ignored: 2 x not a dashboard or rule file" in out  # one line per kind
    assert "ignored: 2 x not a .json, .yaml or .yml file" in out  # named, and in the walk
    assert main(["migrate", str(tmp_path), "--metric", M, "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.count("ignored: not a dashboard or rule file: skipped") == 2
    assert "README.md" in out and "ignored: not a .json, .yaml or .yml file: skipped" in out


def test_check_finds_what_the_split_changes(capsys: pytest.CaptureFixture[str]) -> None:
    rules = str(FIXTURES / "rules.yaml")
    assert main(["check", rules, "--metric", M]) == 1
    out = capsys.readouterr().out
    assert 'alert "StreamErrorRatioHigh"' in out
    assert "ratio whose denominator still counts client_gone" in out
    assert "re-tune it" in out
    assert "counts client_gone as a fault after the split" in out
    # after the split migration the dashboards are clean; alerts still wait for re-tuning
    split = FIXTURES / "expected" / "split"
    assert main(["check", str(split / "dashboard-classic.json"), "--metric", M]) == 0
    capsys.readouterr()
    assert main(["check", str(split / "rules.yaml"), "--metric", M]) == 1
    assert "to change:" not in capsys.readouterr().out
    # preserve mode: selectors on the old value, and nothing after migrating
    assert main(["check", rules, "--metric", M, "--mode", "preserve"]) == 1
    assert "loses client_gone after the split" in capsys.readouterr().out
    preserved = str(FIXTURES / "expected" / "preserve" / "rules.yaml")
    assert main(["check", preserved, "--metric", M, "--mode", "preserve"]) == 0


def test_check_is_quiet_on_unrelated_real_dashboards(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_fixture("teranode")
    assert main(["check", str(path), "--metric", SEED, "--label", "source"]) == 0
    assert "2 file(s)" in capsys.readouterr().out


def test_bad_selection_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rules = str(FIXTURES / "rules.yaml")
    assert main(["migrate", rules, "--metric", M, "--split", "write_failed"]) == 2
    assert "both the old value and a split value" in capsys.readouterr().err


EDGE_CASES = """\
groups:
- name: flow
  rules: [{alert: A, expr: 'm{reason="write_failed"} > 1', for: 5m},
    {record: r, expr: "sum(m{reason=\\"write_failed\\"})"}]
- name: anchors
  rules:
  - record: x
    expr: &shared sum(rate(m{reason="write_failed"}[5m]))
  - record: y
    expr: *shared
  - alert: Helm
    expr: sum(rate(m{reason="write_failed", job="{{ .Values.job }}"}[{{ .Values.window }}])) > 0
  - alert: Folded
    expr: >
      sum(rate(m{reason="write_failed"}[5m]))
        > 1
  - record: plain_multiline
    expr: sum(rate(m{reason="write_failed"}[5m]))
      / 2
"""


def test_yaml_flow_style_anchors_helm_and_folded_scalars(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(EDGE_CASES)
    [r] = plan_paths([path], Selection(("m",)))
    assert not r.error
    new = 'reason=~"write_failed|client_gone"'
    # every occurrence edited in place (the alias follows its anchor), nothing else
    assert r.new_text == EDGE_CASES.replace('reason="write_failed"', new).replace(
        'reason=\\"write_failed\\"', 'reason=~\\"write_failed|client_gone\\"'
    )
    assert [s.location for s, _ in r.sites] == [
        'group "flow" alert "A"',
        'group "flow" record "r"',
        'group "anchors" record "x"',
        'group "anchors" alert "Helm"',
        'group "anchors" alert "Folded"',
        'group "anchors" record "plain_multiline"',
    ]


def test_cli_selection_flags_for_the_seed_scheme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "seed.yaml"
    shutil.copy(FIXTURES / "seed-rules.yaml", path)
    argv = ["migrate", str(path), "--metric", "teranode_asset_.*_total", "--label", "source"]
    argv += ["--from", "write_failed", "--split", "client_gone", "--split", "deadline_exceeded"]
    assert main([*argv, "--write"]) == 1
    capsys.readouterr()
    text = path.read_text()
    assert 'source=~"write_failed|client_gone|deadline_exceeded"' in text
    assert 'result="error"' in text  # the label beside it is left alone
    assert main(argv) == 0
    assert main(["check", str(path), *argv[2:], "--mode", "preserve"]) == 0
    # split mode on the preserved file: back to real faults, ratios exclude both values
    assert main([*argv, "--mode", "split", "--write"]) == 1
    text = path.read_text()
    assert 'source=~"write_failed"' in text
    assert 'source!~"client_gone|deadline_exceeded"' in text
    assert "re-tune" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["dashboard-v2.json", "rules.yaml"])
def test_an_edit_that_does_not_read_back_is_dropped(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The safety net: if the edited file does not read back as intended (here a broken
    encoder that forgets escaping and adds a quote), nothing is written for that
    expression."""
    from errclass.migrate import _files, _sites

    def broken(text: str, site: _sites.Site, edits: list[tuple[int, int, str]]) -> list:
        good = _sites.raw_edits(text, site, edits)
        return [(a, b, new.replace('\\"', '"')) for a, b, new in good] + [
            (site.start + 1, site.start + 1, '"')
        ]

    monkeypatch.setattr(_files, "raw_edits", broken)
    [r] = plan_paths([FIXTURES / name], Selection((M,)))
    assert r.new_text == r.text
    findings = [f for _, er in r.sites for f in er.findings]
    assert findings
    assert {f.status for f in findings} == {"skipped"}
    assert all("did not read back" in f.message for f in findings)


def test_the_collector_paused_while_planning_is_left_as_it_was(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command pauses the process-wide collector while it plans and restores it;
    the library API leaves it alone."""
    import gc

    from errclass.migrate import _files

    seen: list[bool] = []
    real = _files.extract

    def extract(view: object) -> object:
        seen.append(gc.isenabled())
        return real(view)  # type: ignore[arg-type]

    monkeypatch.setattr(_files, "extract", extract)
    assert gc.isenabled()
    check = ["check", str(FIXTURES / "rules.yaml"), "--metric", M]
    main(check)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:  # an application that keeps the collector off keeps it off
        main(check)
        assert not gc.isenabled()
    finally:
        gc.enable()
    seen.clear()
    plan_paths([FIXTURES / "rules.yaml"], Selection((M,)))  # a library call: untouched
    assert seen == [True] and gc.isenabled()
    capsys.readouterr()


def test_crlf_block_scalars_are_edited_at_the_end_of_a_line(tmp_path: Path) -> None:
    """A matcher added at the end of a line goes before its "\\r\\n" (found by an
    adversarial review: it used to land between "\\r" and "\\n")."""
    rules = (
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: |\n"
        f'      sum({M}{{\n        reason!="ok",\n        job="x"\n      }})\n'
        f"      / sum({M})\n"
    ).replace("\n", "\r\n")
    path = tmp_path / "crlf.yaml"
    path.write_bytes(rules.encode())
    [r] = plan_paths([path], Selection((M,), mode="split"))
    assert not [f for _, er in r.sites for f in er.findings if f.status == "skipped"]
    assert r.new_text == rules.replace('job="x"', 'job="x", reason!="client_gone"').replace(
        f"/ sum({M})", f'/ sum({M}{{reason!="client_gone"}})'
    )


@pytest.mark.parametrize("prefix", ["\ufeff", ""], ids=["byte order mark", "no byte order mark"])
@pytest.mark.parametrize("scalar", ['&shared "{}"', '!!str "{}"', "&shared '{}'"])
def test_quoted_scalars_after_an_anchor_or_a_tag_and_files_with_a_bom(
    tmp_path: Path, prefix: str, scalar: str
) -> None:
    """Found by an adversarial review: YAML marks a node from its anchor or tag, and does
    not count a byte order mark; these edits used to be refused."""
    expr = f'sum(rate({M}{{job="a", reason="write_failed"}}[5m]))'
    double = scalar.endswith('"')
    value = expr.replace('"', '\\"') if double else expr
    rule = "  - record: r\n    expr: " + scalar.replace("{}", value) + "\n"
    text = f"{prefix}groups:\n- name: g\n  rules:\n{rule}"
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    [r] = plan_paths([path], Selection((M,)))
    assert not [f for _, er in r.sites for f in er.findings if f.status == "skipped"]
    old, new = 'reason="write_failed"', 'reason=~"write_failed|client_gone"'
    if double:
        old, new = old.replace('"', '\\"'), new.replace('"', '\\"')
    assert r.new_text == text.replace(old, new)


def test_deeply_nested_json_and_lone_surrogates_are_file_errors() -> None:
    """Found by an adversarial review: both escaped plan_text as exceptions."""
    from errclass.migrate._files import FileResult, plan_text

    deep = plan_text("[" * 5000 + "]" * 5000, "json", Selection((M,)), FileResult(Path("x")))
    assert deep.error == "invalid JSON: nested too deeply"
    lone = plan_text("expr: '\ud800'\n", "yaml", Selection((M,)), FileResult(Path("x")))
    assert lone.error.startswith("not valid text")
