"""Quoted scalars over several lines in CRLF files (issue 15): a multi-line double- or
single-quoted ``expr`` in a rule file, and a dashboard in a ConfigMap string, are edited
byte-minimally with their "\\r\\n" kept, exactly as the same file with "\\n" line breaks
is; the migrated rule files load in promtool. And an edit at a line break that YAML
folds into a space (plain and folded scalars) goes before the break."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from errclass.migrate import FileResult, Selection, plan_paths
from tests.support import errclass_cli, promtool_rules

M = "stream_outcomes_total"
SPLIT = Selection((M,), mode="split")
PRESERVE = Selection((M,), mode="preserve")

# (expr as written in the file, with "\n" line breaks; the edits it gets, in the file)
CASES = {
    "double-quoted, split": (
        f'"sum by (job) (rate({M}{{reason!=\\"ok\\"}}[5m]))\n'
        f'      / sum by (job) (rate({M}\n      [5m]))"',  # a break where a selector ends
        SPLIT,
        [
            ('\\"ok\\"}', '\\"ok\\", reason!=\\"client_gone\\"}'),
            (f"{M}\n", f'{M}{{reason!=\\"client_gone\\"}}\n'),
        ],
    ),
    "double-quoted, escaped break and empty line, preserve": (
        f'"sum(rate({M}{{job=\\"api\\",\\\n      \\ reason=\\"write_failed\\"}}[5m]))\n\n'
        '      > 1"',
        PRESERVE,
        [('reason=\\"write_failed\\"', 'reason=~\\"write_failed|client_gone\\"')],
    ),
    "single-quoted, preserve": (
        f'\'sum(rate({M}{{job="api",\n      reason="write_failed"}}[5m]))\n      > 1\'',
        PRESERVE,
        [('reason="write_failed"', 'reason=~"write_failed|client_gone"')],
    ),
    "single-quoted, split": (
        f"'sum(rate({M}{{reason!=''ok'',\n      job=\"api\"}}[5m]))\n"
        f'      / sum(rate({M}{{job="api"}}\n      [5m]))\'',
        SPLIT,
        [
            ('job="api"}[5m]))\n      /', 'job="api", reason!="client_gone"}[5m]))\n      /'),
            ('job="api"}\n', 'job="api", reason!="client_gone"}\n'),
        ],
    ),
}


def _rules(*exprs: str) -> str:
    rules = "".join(f"  - record: job:r{i}:rate5m\n    expr: {e}\n" for i, e in enumerate(exprs))
    return "groups:\n- name: g\n  rules:\n" + rules


def _crlf(s: str) -> str:
    return s.replace("\n", "\r\n")


def _plan_lf_and_crlf(tmp: Path, lf_text: str, sel: Selection) -> tuple[FileResult, FileResult]:
    """*lf_text* planned as written ("\\n" breaks) and as crlf.yaml, the same file with
    "\\r\\n" breaks, which loads the same and skips nothing."""
    (tmp / "lf.yaml").write_text(lf_text)
    [lf] = plan_paths([tmp / "lf.yaml"], sel)
    text = _crlf(lf_text)
    path = tmp / "crlf.yaml"
    path.write_bytes(text.encode())
    assert yaml.safe_load(text) == yaml.safe_load(lf_text)
    [r] = plan_paths([path], sel)
    assert not [f.message for _, er in r.sites for f in er.findings if f.status == "skipped"]
    return lf, r


def _promtool_check(path: Path) -> None:
    done = promtool_rules(path, flags=("--lint-fatal",))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_a_quoted_expr_over_several_lines_in_a_crlf_rule_file(case: str, tmp_path: Path) -> None:
    expr, sel, edits = CASES[case]
    lf_text = _rules(expr)
    want_lf = lf_text
    for old, new in edits:
        assert want_lf.count(old) == 1, old
        want_lf = want_lf.replace(old, new)
    lf, r = _plan_lf_and_crlf(tmp_path, lf_text, sel)
    # the same file with "\n" breaks: the edits wanted (a right fixture, and the oracle)
    assert lf.new_text == want_lf != lf_text
    # byte-minimal, CRLF kept: the edits of the "\n" file, nothing else
    assert r.new_text == _crlf(want_lf)
    assert r.new_text.count("\n") == r.new_text.count("\r\n")
    assert yaml.safe_load(r.new_text) == yaml.safe_load(want_lf)
    [(site, _)] = r.sites
    assert r.line(site.start) == 5
    path = tmp_path / "crlf.yaml"
    path.write_bytes(r.new_text.encode())
    _promtool_check(path)
    [again] = plan_paths([path], sel)
    assert not again.changed


def _dashboard() -> str:
    panel = {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": [
            {"expr": f'sum(rate({M}{{reason!="ok"}}[5m])) / sum(rate({M}[5m]))', "refId": "A"}
        ],
        "title": "Error ratio",
    }
    return json.dumps({"panels": [panel], "title": "Streams"}, indent=2)


@pytest.mark.parametrize("style", ['"', "'"], ids=["double-quoted", "single-quoted"])
@pytest.mark.parametrize("inner", ["dashboard", "rule file"])
def test_a_configmap_string_over_several_lines_in_a_crlf_file(
    style: str, inner: str, tmp_path: Path
) -> None:
    value = _dashboard() if inner == "dashboard" else _rules(CASES["double-quoted, split"][0])
    data = yaml.dump(
        {"d.json" if inner == "dashboard" else "r.yaml": value}, default_style=style, width=50
    )
    lf_text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dash\ndata:\n" + "".join(
        "  " + line for line in data.splitlines(True)
    )
    assert lf_text.count("\n") >= 8  # the string is over several lines
    lf, r = _plan_lf_and_crlf(tmp_path, lf_text, SPLIT)
    assert lf.changed
    assert r.new_text == _crlf(lf.new_text)
    assert [r.line(s.start) for s, _ in r.sites] == [lf.line(s.start) for s, _ in lf.sites]


def test_migrate_write_then_check_on_a_crlf_rule_file(tmp_path: Path) -> None:
    """The CLI end to end: migrate --write, then check finds nothing left, the file
    keeps its CRLF line breaks and loads in promtool."""
    text = _crlf(_rules(*(expr for expr, sel, _ in CASES.values() if sel is PRESERVE)))
    path = tmp_path / "rules.yaml"
    path.write_bytes(text.encode())
    args = [str(path), "--metric", M, "--mode", "preserve"]
    done = errclass_cli("migrate", *args, "--write")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skipped" not in done.stdout and done.stderr == ""
    new = path.read_bytes().decode()
    assert new != text and new.count("\n") == new.count("\r\n")
    assert new.count("write_failed|client_gone") == 2
    check = errclass_cli("check", *args)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 file(s) to change" in check.stdout
    _promtool_check(path)


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("header", ["", ">", ">-"], ids=["plain", "folded", "folded strip"])
def test_an_edit_where_a_line_break_folds_into_a_space(
    header: str, newline: str, tmp_path: Path
) -> None:
    """A selector that ends a line of a plain or folded scalar (the break reads as a
    space): the matcher goes before the break, not into the next line's indentation
    (which used to fail the read-back, for "\\n" files too)."""
    lead = f"{header}\n      " if header else ""
    expr = f'{lead}sum(rate({M}{{reason!="ok"}}[5m])) / sum(rate({M}\n      [5m]))'
    text = _rules(expr).replace("\n", newline)
    path = tmp_path / "rules.yaml"
    path.write_bytes(text.encode())
    [r] = plan_paths([path], SPLIT)
    assert not [f.message for _, er in r.sites for f in er.findings if f.status == "skipped"]
    want = text.replace('"ok"}', '"ok", reason!="client_gone"}')
    want = want.replace(f"{M}{newline}", f'{M}{{reason!="client_gone"}}{newline}')
    assert r.new_text == want
    assert yaml.safe_load(r.new_text)["groups"][0]["rules"][0]["expr"].startswith(
        f'sum(rate({M}{{reason!="ok", reason!="client_gone"}}[5m])) / sum(rate({M}'
        '{reason!="client_gone"} [5m]))'
    )
    path.write_bytes(r.new_text.encode())
    _promtool_check(path)
