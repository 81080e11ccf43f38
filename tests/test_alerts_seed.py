"""The teranode render at the seed's own numbers (issue 14): promtool unit tests in
alerts/tests/teranode/ run against the example config rendered into a temp dir, and
the import paths (Grafana titles, runbook anchors, absent per job, __requires) hold for
a render that is not the default one."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from errclass import monitoring
from tests.support import ROOT, require_tool

EXAMPLES = ROOT / "errclass" / "monitoring" / "examples"
SEED_TESTS = ROOT / "alerts" / "tests" / "teranode"
SEED_UNIT_TESTS = sorted(SEED_TESTS.glob("*.yaml"))


def example(name: str = "teranode.toml", **changes: Any) -> monitoring.Config:
    data = tomllib.loads((EXAMPLES / name).read_text())
    data.update(changes)
    return monitoring.from_mapping(data)


def promtool_test(test: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, "test", "rules", str(test)],
        check=False,
        capture_output=True,
        text=True,
        cwd=test.parent,
        timeout=300,
    )


@pytest.fixture(scope="module")
def seed_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The teranode example rendered, with the seed-scale unit tests beside its rules."""
    out = tmp_path_factory.mktemp("seed")
    monitoring.write(monitoring.render(example()), out)
    shutil.copytree(SEED_TESTS, out / "alerts" / "tests" / "teranode")
    return out


def test_seed_unit_tests_cover_issue_14() -> None:
    names = {p.stem for p in SEED_UNIT_TESTS}
    assert names >= {"low_traffic", "fault_burst", "outage", "slow_burn", "legacy"}


@pytest.mark.parametrize("name", [p.stem for p in SEED_UNIT_TESTS])
def test_seed_scale_promtool(seed_render: Path, name: str) -> None:
    r = promtool_test(seed_render / "alerts" / "tests" / "teranode" / f"{name}.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


# -- import paths -----------------------------------------------------------------------------


def test_grafana_titles_are_unique_per_folder() -> None:
    for cfg in (monitoring.Config(), example()):
        files = monitoring.render(cfg)
        data = yaml.safe_load(files[f"alerts/{cfg.name}.grafana.yaml"])
        titles: dict[str, list[str]] = {}
        for group in data["groups"]:
            titles.setdefault(group["folder"], []).extend(r["title"] for r in group["rules"])
        for folder, names in titles.items():
            dupes = sorted({t for t in names if names.count(t) > 1})
            assert not dupes, f"{cfg.name}: folder {folder!r} repeats {dupes}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to dashes."""
    out = set()
    for line in markdown.splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("prefix", ["Errclass", "TeranodeSubtreeData"])
def test_every_runbook_anchor_resolves_in_the_rendered_runbook(prefix: str) -> None:
    cfg = example(alerts={"prefix": prefix})
    files = monitoring.render(cfg)
    runbooks = [rel for rel in files if rel.endswith("RUNBOOK.md")]
    assert runbooks, "errclass render writes no RUNBOOK.md"
    anchors = _anchors(files[runbooks[0]])
    rules = yaml.safe_load(files[f"alerts/{cfg.name}.rules.yaml"])
    urls = [r["annotations"]["runbook_url"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert urls
    dead = sorted({u for u in urls if u.rsplit("#", 1)[-1] not in anchors})
    assert not dead, f"anchors missing from {runbooks[0]}: {dead}"


def test_requires_matches_the_schema_version_and_grafana_parses_it() -> None:
    from grafana_foundation_sdk.models import dashboard as sdk

    import errclass.monitoring._dashboard as board

    for cfg in (monitoring.Config(), example()):
        shared = monitoring.render(cfg)[f"grafana/import/{cfg.dashboard.uid}.json"]
        import json

        d = json.loads(shared)
        (grafana,) = [r for r in d["__requires"] if r["type"] == "grafana"]
        assert grafana["version"] == board.GRAFANA_FOR_SCHEMA[d["schemaVersion"]]
        model = sdk.Dashboard.from_json(d)
        assert model.schema_version == d["schemaVersion"]
        assert [p.title for p in model.panels or []] == [p["title"] for p in d["panels"]]
        for parsed, raw in zip(model.panels or [], d["panels"], strict=True):
            assert isinstance(parsed, sdk.Panel)
            assert parsed.type_val == raw["type"]
            assert [t.to_json()["expr"] for t in parsed.targets or []] == [
                t["expr"] for t in raw["targets"]
            ]
