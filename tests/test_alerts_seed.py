"""The teranode render at the seed's own numbers (issue 14): promtool unit tests in
alerts/tests/teranode/ run against the example config rendered into a temp dir, and
the import paths (Grafana titles, runbook anchors, absent per job, __requires) hold for
a render that is not the default one."""

from __future__ import annotations

import json
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
# The two deadline choices of the PR review's third point: deadline_exceeded as its own
# source value, or folded into client_gone as the seed's Go service does.
VARIANTS = {"own": "teranode.toml", "folded": "teranode-deadline-folded.toml"}


def seed_unit_tests(variant: str) -> list[Path]:
    """The tests both variants share, then the variant's own."""
    return sorted(SEED_TESTS.glob("*.yaml")) + sorted(SEED_TESTS.glob(f"deadline-{variant}/*.yaml"))


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


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def seed_render(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """An example rendered, with the seed-scale unit tests beside its rules."""
    out = tmp_path_factory.mktemp(f"seed-{request.param}")
    monitoring.write(monitoring.render(example(VARIANTS[request.param])), out)
    shutil.copytree(SEED_TESTS, out / "alerts" / "tests" / "teranode")
    return request.param, out


def test_seed_unit_tests_cover_issue_14() -> None:
    for variant in VARIANTS:
        names = {str(p.relative_to(SEED_TESTS).with_suffix("")) for p in seed_unit_tests(variant)}
        assert names >= {
            "low_traffic",
            "fault_burst",
            "outage",
            "slow_burn",
            "absent",
            f"deadline-{variant}/legacy",
            f"deadline-{variant}/deadline",
        }


def test_seed_scale_promtool(seed_render: tuple[str, Path]) -> None:
    variant, out = seed_render
    failed = []
    for test in seed_unit_tests(variant):
        r = promtool_test(out / "alerts" / "tests" / "teranode" / test.relative_to(SEED_TESTS))
        if r.returncode != 0 or "SUCCESS" not in r.stdout:
            failed.append(f"{test.relative_to(SEED_TESTS)}:\n{r.stdout}{r.stderr}")
    assert not failed, "\n".join(failed)


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
    urls = [
        r["annotations"]["runbook_url"] for g in rules["groups"] for r in g["rules"] if "alert" in r
    ]
    assert urls
    dead = sorted({u for u in urls if u.rsplit("#", 1)[-1] not in anchors})
    assert not dead, f"anchors missing from {runbooks[0]}: {dead}"


# What Grafana's typed model leaves out on purpose: a null id, the variables' UI-only
# `definition`, and the export-for-sharing keys (the foundation SDK never reads them).
_SDK_DROPS = re.compile(
    r"\.id|\.templating\.list\[\d+\]\.definition|\.__(inputs|elements|requires)"
)


def _lost(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Every value of *ours* that *theirs* (the SDK's re-encoding) drops or changes."""
    if isinstance(ours, dict):
        out = []
        for k, v in ours.items():
            here = f"{path}.{k}"
            if k not in theirs:
                out += [] if _SDK_DROPS.fullmatch(here) else [f"{here} dropped"]
            else:
                out += _lost(v, theirs[k], here)
        return out
    if isinstance(ours, list):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} items became {len(theirs)}"]
        return [
            x
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for x in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [f"{path}: {ours!r} became {theirs!r}"]


def _encode(model: Any) -> Any:
    from grafana_foundation_sdk.cog import encoder

    return json.loads(encoder.JSONEncoder().encode(model))


def test_requires_matches_the_schema_version_and_grafana_parses_it() -> None:
    """Grafana's own typed models (grafana-foundation-sdk, the 11.6 build) read every
    key and value we write: the dashboard, and each panel's options and field config
    through its panel type's model."""
    from grafana_foundation_sdk.models import dashboard as sdk
    from grafana_foundation_sdk.models import stat, timeseries

    from errclass.monitoring import _dashboard as board

    kinds: dict[str, Any] = {"timeseries": timeseries, "stat": stat}
    for cfg in (monitoring.Config(), example(), example(VARIANTS["folded"])):
        files = monitoring.render(cfg)
        for rel in (
            f"grafana/{cfg.dashboard.uid}.json",
            f"grafana/import/{cfg.dashboard.uid}.json",
        ):
            d = json.loads(files[rel])
            model = sdk.Dashboard.from_json(d)
            assert model.schema_version == d["schemaVersion"] == board.SCHEMA_VERSION
            assert not _lost(d, _encode(model)), (rel, _lost(d, _encode(model)))
            for panel in d["panels"]:
                kind = kinds[panel["type"]]
                options = _encode(kind.Options.from_json(panel["options"]))
                assert not _lost(panel["options"], options), (panel["title"], options)
                custom = panel["fieldConfig"]["defaults"].get("custom")
                if custom is not None:
                    assert not _lost(custom, _encode(kind.FieldConfig.from_json(custom)))
        shared = json.loads(files[f"grafana/import/{cfg.dashboard.uid}.json"])
        (grafana,) = [r for r in shared["__requires"] if r["type"] == "grafana"]
        assert grafana["version"] == board.GRAFANA_FOR_SCHEMA[shared["schemaVersion"]]


def test_the_sdk_check_catches_a_key_grafana_does_not_know() -> None:
    from grafana_foundation_sdk.models import dashboard as sdk

    d = json.loads(monitoring.render()["grafana/errclass-outcomes.json"])
    d["panels"][0]["gridPos"]["width"] = 12  # Grafana's is "w"
    d["refresh"] = 30  # a string in Grafana's schema
    lost = _lost(d, _encode(sdk.Dashboard.from_json(d)))
    assert ".panels[0].gridPos.width dropped" in lost
