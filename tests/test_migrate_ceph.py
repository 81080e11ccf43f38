"""Issue 15 on real files: Debian's ceph-grafana-dashboards and ceph-prometheus-alerts
(installed by ``make test`` as root; skipped locally without them, a failure under
ERRCLASS_REQUIRE_TOOLS=1)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from errclass._cli import main
from errclass.migrate import Selection, plan_paths
from tests.support import REQUIRE_TOOLS, require_tool

DASHBOARDS = Path("/etc/grafana/dashboards/ceph-dashboard")
ALERTS = Path("/etc/prometheus/ceph/ceph_default_alerts.yml")


def _ceph() -> tuple[Path, Path]:
    if not (DASHBOARDS.is_dir() and ALERTS.is_file()):
        msg = (
            "Debian's ceph-grafana-dashboards / ceph-prometheus-alerts are not installed "
            "(make test installs them as root)"
        )
        if REQUIRE_TOOLS:
            pytest.fail(msg + "; ERRCLASS_REQUIRE_TOOLS=1 forbids skipping")
        pytest.skip(msg)
    return DASHBOARDS, ALERTS


def test_ceph_alerts_preserve_migration_passes_promtool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, alerts = _ceph()
    promtool = require_tool("promtool")
    path = tmp_path / alerts.name
    shutil.copy(alerts, path)
    args = [str(path), "--metric", "ceph_health_detail", "--label", "name"]
    args += ["--from", "OSD_DOWN", "--split", "OSD_HOST_DOWN"]
    assert main(["migrate", *args, "--write"]) == 1
    capsys.readouterr()
    new = path.read_text()
    old = alerts.read_text()
    assert new == old.replace('name=\\"OSD_DOWN\\"', 'name=~\\"OSD_DOWN|OSD_HOST_DOWN\\"')
    assert new != old
    run = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    sel = Selection(("ceph_health_detail",), label="name", old="OSD_DOWN", split=("OSD_HOST_DOWN",))
    [again] = plan_paths([path], sel)
    assert not again.changed  # a second run changes nothing


def test_ceph_dashboards_in_a_configmaplist_migrate_as_the_files_do(tmp_path: Path) -> None:
    """The ceph dashboards wrapped the way kube-prometheus ships its own (a ConfigMapList,
    each dashboard in a ``|-`` block): the same edits as on the JSON files."""
    dashboards, _ = _ceph()
    sel = Selection(("ceph_.*",), mode="split")
    files = sorted(dashboards.glob("*.json"))
    alone = {r.path.name: r for r in plan_paths(files, sel)}
    assert sum(r.changed for r in alone.values()) >= 5
    items = []
    for f in files:
        body = f.read_text().rstrip("\n")
        block = "".join("      " + ln if ln.strip() else ln for ln in body.splitlines(True))
        items.append(
            f"- apiVersion: v1\n  data:\n    {f.name}: |-\n{block}\n  kind: ConfigMap\n"
            f"  metadata:\n    name: grafana-dashboard-{f.stem}\n"
        )
    path = tmp_path / "grafana-dashboardDefinitions.yaml"
    path.write_text("apiVersion: v1\nitems:\n" + "".join(items) + "kind: ConfigMapList\n")
    [r] = plan_paths([path], sel)
    assert not r.error
    assert r.formats.count("grafana dashboard") == len(files)
    doc = yaml.safe_load(r.new_text)
    for item in doc["items"]:
        [(name, value)] = item["data"].items()
        assert value == alone[name].new_text.rstrip("\n"), name
    inner = sum(len(a.sites) for a in alone.values())
    assert len(r.sites) == inner
    assert [f.status for _, e in r.sites for f in e.findings] == [
        f.status for n in sorted(alone) for _, e in alone[n].sites for f in e.findings
    ]
    json.loads(doc["items"][0]["data"][files[0].name])  # still JSON
