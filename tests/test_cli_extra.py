"""Without the ``cli`` extra, the commands that need it say what to install (exit 2, no
traceback). Run for real: ``python -m errclass`` in a subprocess whose imports of the
extra's modules fail as they do when it is not installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, python_argv

# Runs ``python -m errclass ARGS`` with the cli extra's modules unimportable when
# BLOCK is "1" (and importable otherwise, the control).
WRAPPER = """
import importlib.abc, os, runpy, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("yaml", "promql_parser"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

if sys.argv[1] == "1":
    sys.meta_path.insert(0, NotInstalled())
sys.argv = ["errclass", *sys.argv[2:]]
runpy.run_module("errclass", run_name="__main__", alter_sys=True)
"""

M = "stream_outcomes_total"
RULES = ROOT / "tests" / "fixtures" / "migrate" / "rules.yaml"


def _run(block: bool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_argv("-c", WRAPPER, "1" if block else "0", *args),
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    dashboard = tmp_path / "dashboard.json"
    expr = f'sum(rate({M}{{reason="write_failed"}}[5m]))'
    dashboard.write_text(json.dumps({"panels": [{"targets": [{"expr": expr}]}]}))
    return {
        "render": ["render", "--out", str(tmp_path / "out")],
        "render --print-config": ["render", "--print-config"],
        "migrate yaml": ["migrate", str(RULES), "--metric", M],
        "migrate json": ["migrate", str(dashboard), "--metric", M],
        "check": ["check", str(RULES), "--metric", M],
    }


@pytest.mark.parametrize(
    "command", ["render", "render --print-config", "migrate yaml", "migrate json", "check"]
)
def test_a_command_without_the_cli_extra_says_what_to_install(tmp_path: Path, command: str) -> None:
    args = _commands(tmp_path)[command]
    r = _run(True, *args)
    assert r.returncode == 2, r.stderr
    assert "pip install 'errclass[cli]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert f"errclass {args[0]}: this command needs" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
    control = _run(False, *args)  # the same wrapper with the extra importable
    assert control.returncode in (0, 1), control.stderr  # 1: migrate/check found changes
    assert "pip install" not in control.stderr


def test_commands_without_the_extra_still_run() -> None:
    """The demo and --help need nothing from the extra."""
    r = _run(True, "--help")
    assert r.returncode == 0, r.stderr
    assert "render" in r.stdout and "migrate" in r.stdout
