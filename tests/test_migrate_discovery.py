"""Issue 15 items 3 and 4: what a directory walk finds, and what is not PromQL.

* A file without an extension is sniffed: a dashboard or rule file is read like any
  other; anything else is listed as ignored, like files of other types.
* Empty expressions and queries for datasources that are not Prometheus (Loki's LogQL,
  by the datasource or by the query's own shape) are skipped, counted in the summary,
  and are no finding: the command exits 0 when nothing else is found.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from errclass._cli import main
from errclass.migrate import Selection, plan_paths

TREE = Path(__file__).parent / "fixtures" / "migrate-real" / "tree"
M = "stream_outcomes_total"


def test_an_extensionless_dashboard_and_rule_file_are_read() -> None:
    results = {r.path.name: r for r in plan_paths([TREE], Selection((M,)))}
    assert {"overview", "alerts"} <= set(results)
    assert results["overview"].formats == ["grafana dashboard"]
    assert results["overview"].changed
    assert results["alerts"].formats == ["Prometheus rules"]
    assert results["alerts"].changed
    # other files are listed, never touched
    readme = results["README.md"]
    assert readme.notes and not readme.changed and not readme.error


def test_extensionless_files_that_are_not_ours_are_listed_not_errors(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n\techo {hi: [\n")
    (tmp_path / "LICENSE").write_text("Permission is hereby granted: free of charge.\n")
    (tmp_path / "blob").write_bytes(b"\xff\xfe\x00binary")
    (tmp_path / "package").write_text('{"name": "x"}')
    results = {r.path.name: r for r in plan_paths([tmp_path], Selection((M,)))}
    assert set(results) == {"Makefile", "LICENSE", "blob", "package"}
    for r in results.values():
        assert not r.error, r
        assert r.notes and not r.changed


def test_an_extensionless_dashboard_named_on_the_command_line_is_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["migrate", str(TREE / "overview"), "--metric", M]) == 1
    assert 'reason=~"write_failed|client_gone"' in capsys.readouterr().out


def test_empty_and_logql_queries_are_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(TREE / "logs.json", tmp_path / "logs.json")
    # a regex --metric matches any name: every expression is parsed
    assert main(["check", str(tmp_path), "--metric", ".*_total", "--mode", "preserve"]) == 0
    out = capsys.readouterr().out
    assert "not valid PromQL" not in out
    assert "2 empty" in out
    assert "2 not PromQL" in out  # one by its Loki datasource, one by its LogQL shape


def test_a_loki_target_datasource_is_skipped_even_on_a_prometheus_panel(tmp_path: Path) -> None:
    dash = {
        "panels": [
            {
                "datasource": {"type": "prometheus", "uid": "prom"},
                "targets": [
                    {"datasource": {"type": "loki", "uid": "logs"}, "expr": '{job="x"}'},
                    {"expr": f'sum(rate({M}{{reason="write_failed"}}[5m]))', "refId": "B"},
                ],
                "title": "Mixed",
            }
        ]
    }
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(dash))
    [r] = plan_paths([path], Selection((".*",)))
    assert [s.location for s, _ in r.sites] == ['panel "Mixed" query B']
    assert r.skipped == {"not PromQL": 1}
