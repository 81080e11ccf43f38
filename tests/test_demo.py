"""`make demo` runs the main job: every scenario is classified as expected."""

from __future__ import annotations

import subprocess
import sys


def test_demo_classifies_every_scenario() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "errclass", "demo", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "all scenarios classified as expected" in out
    for reason, count in [
        ("ok", 2),
        ("client_gone", 4),
        ("deadline_exceeded", 2),
        ("write_failed", 2),
    ]:
        line = f'errclass_outcomes_total{{producer="demo.download",reason="{reason}"}} {count:.1f}'
        assert line in out, out
    assert "log DEBUG   demo.download ended: client_gone" in out
    assert "log WARNING demo.download ended: write_failed" in out
