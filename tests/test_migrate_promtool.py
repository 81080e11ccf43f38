"""Migrated rule files against the real promtool: they still load, and a legacy alert
migrated in preserve mode fires on post-split data exactly when the original fired on
pre-split data (and the unmigrated alert does not)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from errclass.migrate import Selection, plan_paths
from tests.support import require_tool

FIXTURES = Path(__file__).parent / "fixtures" / "migrate"
M = "stream_outcomes_total"
SEED = "teranode_asset_repository_subtree_data_created_total"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _rule_files(name: str, text: str, tmp: Path) -> list[Path]:
    """What promtool can read: Mimir's namespace key and the CRD wrapper removed."""
    if name == "mimir.yaml":
        data = [{"groups": yaml.safe_load(text)["groups"]}]
    elif name == "prometheusrule.yaml":
        docs = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "PrometheusRule"]
        data = [{"groups": d["spec"]["groups"]} for d in docs]
    else:
        path = tmp / name
        path.write_text(text)
        return [path]
    out = []
    for i, d in enumerate(data):
        path = tmp / f"{i}-{name}"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        out.append(path)
    return out


@pytest.mark.parametrize("mode", ["preserve", "split"])
@pytest.mark.parametrize(
    "name", ["rules.yaml", "seed-rules.yaml", "mimir.yaml", "prometheusrule.yaml"]
)
def test_migrated_rule_files_pass_promtool_check(name: str, mode: str, tmp_path: Path) -> None:
    if name.startswith("seed"):
        sel = Selection((SEED,), label="source", mode=mode)
    else:
        sel = Selection((M,), mode=mode)
    [r] = plan_paths([FIXTURES / name], sel)
    assert r.changed or (mode, name) == ("split", "mimir.yaml")
    files = _rule_files(name, r.new_text, tmp_path)
    done = _promtool("check", "rules", "--lint-fatal", *map(str, files))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# --- the legacy alert, before and after the split ------------------------------------

LEGACY = f"""\
# thresholds tuned before client_gone existed
groups:
  - name: teranode.asset
    rules:
      - alert: SubtreeDataWriteFailed
        expr: sum(rate({SEED}{{result="error", source="write_failed"}}[5m])) > 1
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: subtree_data streams fail to write
"""

# 30 failures/min, then 120/min for 20 minutes, then 30/min again.
PRE_SPLIT = [(f'{SEED}{{result="error", source="write_failed"}}', "0+30x20 600+120x20 3000+30x20")]
# The same failures after the split: three quarters of the burst were clients going away.
POST_SPLIT = [
    (f'{SEED}{{result="error", source="write_failed"}}', "0+15x20 300+30x20 900+15x20"),
    (f'{SEED}{{result="error", source="client_gone"}}', "0+15x20 300+90x20 2100+15x20"),
]
FIRING = {
    "exp_labels": {"severity": "warning"},
    "exp_annotations": {"summary": "subtree_data streams fail to write"},
}
# Quiet before the burst, firing during it (after 5m of rate window and 5m of "for"),
# quiet again once the burst has left the window.
EXPECTED = [
    (m, [] if m < 25 or m > 46 else [FIRING]) for m in (5, 10, 15, 20, 32, 35, 38, 40, 50, 55)
]


def _unit_test(
    tmp: Path, rules: str, series: list[tuple[str, str]]
) -> subprocess.CompletedProcess[str]:
    (tmp / "rules.yaml").write_text(rules)
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {"eval_time": f"{m}m", "alertname": "SubtreeDataWriteFailed", "exp_alerts": exp}
                    for m, exp in EXPECTED
                ],
            }
        ],
    }
    (tmp / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    return _promtool("test", "rules", str(tmp / "test.yaml"))


def test_preserved_alert_fires_exactly_when_the_original_did(tmp_path: Path) -> None:
    sel = Selection((SEED,), label="source", mode="preserve")
    migrated = _migrate_text(LEGACY, sel, tmp_path)
    assert 'source=~"write_failed|client_gone"' in migrated
    assert migrated.replace('source=~"write_failed|client_gone"', 'source="write_failed"') == LEGACY

    original = _unit_test(tmp_path, LEGACY, PRE_SPLIT)
    assert original.returncode == 0, original.stdout + original.stderr
    after = _unit_test(tmp_path, migrated, POST_SPLIT)
    assert after.returncode == 0, after.stdout + after.stderr
    # the control: left alone, the legacy alert goes quiet on post-split data
    stale = _unit_test(tmp_path, LEGACY, POST_SPLIT)
    assert stale.returncode != 0
    assert "SubtreeDataWriteFailed" in stale.stderr


def _migrate_text(text: str, sel: Selection, tmp: Path) -> str:
    path = tmp / "legacy-rules.yaml"
    path.write_text(text)
    [r] = plan_paths([path], sel)
    assert not r.error
    return r.new_text
