"""Issue 15 items 5 and 6: what ``migrate``/``check`` print, and that what is written
never depends on stdout.

* ``migrate --write | head -1``: files are written before anything is reported, and a
  reader that leaves early ends the report quietly (no traceback), with the status the
  run would have had.
* ``check``: findings first; ignored files summarised in one line per kind (listed one by
  one with ``--verbose``); lines kept within 100 columns; ``--format json`` for CI and
  ``--format github`` for GitHub Actions annotations."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from errclass._cli import main
from errclass.migrate import Selection, plan_paths

REAL = Path(__file__).parent / "fixtures" / "migrate-real"
M = "stream_outcomes_total"


def _big_dashboard(n: int) -> str:
    panels = [
        {
            "id": i,
            "targets": [{"expr": f'sum(rate({M}{{job="j{i}", reason="write_failed"}}[5m]))'}],
            "title": f"Panel {i}",
        }
        for i in range(n)
    ]
    return json.dumps({"panels": panels, "title": "big"}, indent=2)


@pytest.mark.parametrize("command", ["migrate", "check"])
def test_a_reader_that_leaves_early_gets_no_traceback_and_files_are_written(
    command: str, tmp_path: Path
) -> None:
    for k in range(3):  # far more than a pipe buffer of diff
        (tmp_path / f"d{k}.json").write_text(_big_dashboard(800))
    want = {r.path: r.new_text for r in plan_paths([tmp_path], Selection((M,)))}
    args = [sys.executable, "-m", "errclass", command, str(tmp_path), "--metric", M]
    args += ["--mode", "preserve"] + (["--write"] if command == "migrate" else [])
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as producer:
        assert producer.stdout is not None
        head = subprocess.run(
            ["head", "-1"], stdin=producer.stdout, capture_output=True, timeout=60, check=True
        )
        producer.stdout.close()  # only head holds the read end now; it has exited
        _, err = producer.communicate(timeout=60)
    assert head.stdout.count(b"\n") == 1
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert err == b""
    assert producer.returncode == 1  # changes found, as without the pipe
    if command == "migrate":
        for path, text in want.items():
            assert path.read_text() == text
            assert 'reason=~\\"write_failed|client_gone\\"' in text


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REAL / "tree", root)
    shutil.copy(REAL / "histogram-mean.yaml", root / "histogram-mean.yaml")
    for k in range(40):
        (root / f"notes-{k}.md").write_text("# notes\n")
        (root / f"values-{k}.yaml").write_text("replicas: 2\n")
    return root


def test_check_puts_findings_first_and_summarises_ignored_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    monkeypatch.chdir(root)
    assert main(["check", ".", "--metric", M, "--metric", "stream_duration_seconds_count"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert re.match(r"\S+:\d+: ", lines[0]), lines[0]  # a finding comes first
    ignored = [ln for ln in lines if "ignored" in ln]
    # one line per kind of ignored file, with the count, after the findings
    assert len([ln for ln in ignored if re.match(r"ignored: \d+ x ", ln)]) == 2, ignored
    assert len(ignored) == 3, ignored  # and the count in the summary line
    assert max(len(ln) for ln in lines) <= 100, max(lines, key=len)
    assert "notes-7.md" not in out
    assert main(["check", ".", "--metric", M, "--verbose"]) == 1
    verbose = capsys.readouterr().out
    assert "notes-7.md" in verbose and "values-7.yaml" in verbose
    assert max(len(ln) for ln in verbose.splitlines()) <= 100


def test_check_format_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_tree(tmp_path))
    assert main(["check", ".", "--metric", M, "--mode", "preserve", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    findings = report["findings"]
    assert findings
    for f in findings:
        assert {"file", "line", "location", "status", "message", "old", "new"} <= set(f)
        assert isinstance(f["line"], int)
        assert Path(f["file"]).exists()
    assert {f["file"] for f in findings} >= {"overview", "alerts"}
    assert len(report["ignored"]) >= 80
    assert report["summary"]["files"] >= 84
    assert main(["check", str(REAL / "tree" / "README.md"), "--metric", M, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


_ANNOTATION = re.compile(r"::(error|warning|notice) file=([^,:]+),line=(\d+)(,[^:]*)?::(.+)")


def test_check_format_github(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(_tree(tmp_path))
    assert main(["check", ".", "--metric", M, "--mode", "preserve", "--format", "github"]) == 1
    out = capsys.readouterr().out
    annotations = [ln for ln in out.splitlines() if ln.startswith("::")]
    assert annotations
    files = set()
    for ln in annotations:
        m = _ANNOTATION.fullmatch(ln)
        assert m, ln
        files.add(m.group(2))
        assert "\n" not in m.group(5)
    assert {"overview", "alerts"} <= files
