"""End to end: a real Prometheus (1 s scrape and evaluation) loads the rendered rules and
scrapes real Python processes instrumented with errclass; every dashboard query, every
recording rule and every alert is checked through Prometheus's HTTP API, for the
default metric and for the seed's (teranode) metric scheme.

The seed scheme also replays the seed's incident (issue 14): a Go-style exporter whose
write_failed counter was never incremented (no series at all) serves a cancel cascade,
then a write_failed burst. Before the burst every ratio panel must read 0, not "No
data"; the burst must page; a producer with a single failure must not."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from errclass import monitoring
from errclass.monitoring._queries import Queries
from tests.support import free_port, python_argv, require_tool, running
from tests.test_render import EXAMPLE, targets

pytestmark = pytest.mark.slow

# Short windows so the whole run takes seconds; the committed render keeps production values.
FAST: dict[str, Any] = {
    "burn_rates": [
        {"long": "20s", "short": "10s", "factor": 2, "severity": "critical", "for": "0s"},
        {"long": "40s", "short": "20s", "factor": 1, "severity": "warning", "for": "0s"},
    ],
    "slo": {"objective": 0.9, "period": "1m"},
    "legacy_window": "10s",
    "alerts": {
        "deadline": {"window": "10s", "for": "0s"},
        "client_gone": {"window": "10s", "for": "0s"},
        "absent": {"for": "1m", "lookback": "1m"},
    },
    "consumer": {"cancelled": {"window": "10s", "for": "0s"}},
    "long_window_interval": "1s",
}
RATE_INTERVAL = "10s"  # what $__rate_interval becomes

# Outcomes per second of each simulated producer.
MIXES = {
    # a genuine fault: 9 of 25 counted outcomes fail, 3 of them on the deadline
    "faulty": {"ok": 16, "write_failed": 6, "deadline_exceeded": 3, "client_gone": 2},
    # the split: clients walk away from 96% of streams, the server is fine
    "cascade": {"ok": 2, "client_gone": 48},
    "healthy": {"ok": 20, "client_gone": 2},
    # one failure, ever, among 3 streams a second: under the guard's 2 failed outcomes
    "single": {"ok": 3, "once:write_failed": 1},
}
# The seed's incident on a Go-style exporter (write_failed has no series until the
# burst): the cascade, then 5% of all attempts fail with write_failed from BURST_AT s.
BURST_AT = 30
INCIDENT = {"ok": 2, "client_gone": 48, f"after:{BURST_AT}:write_failed": 2.5}
# The consumer side (FANOUT_SCHEME.md's errclass_fetch_outcomes_total{fanout, reason,
# cancelled}): one fan-out cancels its own in-flight fetches, one is dropped by upstream.
FANOUTS = {
    "cascading": {("ok", "false"): 10, ("write_failed", "false"): 1, ("client_gone", "true"): 10},
    "steady": {("ok", "false"): 10, ("client_gone", "false"): 2},
}

PRODUCER = """
import errno, json, sys, time
from prometheus_client import CollectorRegistry, Counter, start_http_server
import errclass
from errclass import Reason

port, scheme, mixes = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
registry = CollectorRegistry()
started = time.monotonic()

# Every 50 ms, forever: (now, [(key, n), ...]), n the whole events due at each key's
# rate per second since the last tick (the fraction carried over); a key accrues
# nothing until since(key) seconds after the start.
def ticks(rates, since=lambda key: 0):
    last, due = time.monotonic(), dict.fromkeys(rates, 0.0)
    while True:
        time.sleep(0.05)
        now = time.monotonic()
        out = []
        for key, per_s in rates.items():
            if now - started < since(key):
                continue
            n = due[key] + per_s * (now - last)
            due[key] = n - int(n)
            out.append((key, int(n)))
        last = now
        yield now, out

if scheme == "consumer":  # the fan-out scheme, as a plain counter
    counter = Counter("errclass_fetch_outcomes", "Fan-out fetch outcomes.",
                      ["fanout", "reason", "cancelled"], registry=registry)
    start_http_server(port, addr="127.0.0.1", registry=registry)
    rates = {(f, key): per_s for f, mix in mixes.items() for key, per_s in mix.items()}
    for _, due in ticks(rates):
        for (fanout, key), n in due:
            reason, cancelled = key.split("/")
            counter.labels(fanout, reason, cancelled).inc(n)
if scheme == "go":  # the seed's Go exporter: a child exists once first incremented
    counter = Counter("teranode_asset_repository_subtree_data_created", "Subtree data outcomes.",
                      ["result", "source"], registry=registry)
    source = {"ok": ("success", "on_demand_created"), "client_gone": ("error", "client_gone"),
              "write_failed": ("error", "write_failed")}
    class GoSink:
        def inc(self, reason):
            counter.labels(*source[reason]).inc()
    start_http_server(port, addr="127.0.0.1", registry=registry)
    def after(key):  # "after:30:write_failed": from 30 s on
        at = key.rpartition(":")[0]
        return float(at.split(":")[1]) if at else 0
    (mix,) = mixes.values()
    for _, due in ticks(mix, since=after):
        for key, n in due:
            for _ in range(n):
                GoSink().inc(key.rpartition(":")[2])
if scheme == "default":
    counter = Counter("errclass_outcomes", "Streaming producer outcomes by reason.",
                      ["producer", "reason"], registry=registry)
    sink = errclass.PrometheusSink(counter)
else:  # the seed's scheme: the reason in `source`, `result` beside it, no producer
    counter = Counter("teranode_asset_repository_subtree_data_created", "Subtree data outcomes.",
                      ["result", "source"], registry=registry)
    sink = errclass.PrometheusSink(counter, labels={
        Reason.OK: {"result": "success", "source": "on_demand_created"},
        Reason.CLIENT_GONE: {"result": "error", "source": "client_gone"},
        Reason.WRITE_FAILED: {"result": "error", "source": "write_failed"},
        Reason.DEADLINE_EXCEEDED: {"result": "error", "source": "deadline_exceeded"},
    })
FAILURES = {
    "client_gone": lambda: BrokenPipeError(errno.EPIPE, "Broken pipe"),
    "write_failed": lambda: OSError(errno.EIO, "disk write failed"),
    "deadline_exceeded": lambda: TimeoutError("stream deadline"),
}

def producer(name):
    @errclass.track(sink, name=name, logger=None)
    def stream(reason):
        if reason != "ok":
            raise FAILURES[reason]()
        return b"chunk"
    return stream

streams = {name: producer(name) for name in mixes}
start_http_server(port, addr="127.0.0.1", registry=registry)
rates = {(n, r): per_s for n, mix in mixes.items() for r, per_s in mix.items()
         if not r.startswith("once:")}
once = [(n, r[5:]) for n, mix in mixes.items() for r in mix if r.startswith("once:")]
for now, due in ticks(rates):
    if once and now - started > 3:  # one failure, a few scrapes in
        due, once = [(call, 1) for call in once] + due, []
    for (name, reason), n in due:
        for _ in range(n):
            try:
                streams[name](reason)
            except (OSError, TimeoutError):
                pass
"""


@dataclass
class Scheme:
    name: str
    cfg: monitoring.Config
    jobs: dict[str, list[str]]  # job -> producers (one process per job)
    files: dict[str, str]

    @property
    def agg(self) -> list[str]:
        return list(self.cfg.aggregation_labels)

    def rules(self) -> dict[str, Any]:
        return yaml.safe_load(self.files[f"alerts/{self.cfg.name}.rules.yaml"])

    def dashboard(self) -> dict[str, Any]:
        return json.loads(self.files[f"grafana/{self.cfg.dashboard.uid}.json"])

    def key(self, labels: dict[str, str]) -> str:
        """Which simulated producer (or fan-out) a series belongs to."""
        if "fanout" in labels:
            return labels["fanout"]
        return labels.get(self.cfg.producer_label) or labels["job"].removeprefix("asset-")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def schemes() -> list[Scheme]:
    import tomllib

    default = monitoring.from_mapping(FAST)
    seed = monitoring.from_mapping(_merge(tomllib.loads(EXAMPLE.read_text()), FAST))
    return [
        Scheme(
            "default",
            default,
            {"errclass-e2e": list(MIXES), "errclass-e2e-consumer": list(FANOUTS)},
            monitoring.render(default),
        ),
        Scheme(
            "seed",
            seed,
            {
                "asset-faulty": ["faulty"],
                "asset-cascade": ["cascade"],
                "asset-single": ["single"],
                "asset-incident": ["incident"],
            },
            monitoring.render(seed),
        ),
    ]


# Alerts that must fire, per scheme: (alert suffix, simulated producer, extra labels).
EXPECTED = {
    "default": {
        ("ErrorBudgetBurn", "faulty", ("long", "20s")),
        ("ErrorBudgetBurn", "faulty", ("long", "40s")),
        ("DeadlineExceededHigh", "faulty", ()),
        ("ClientGoneHigh", "cascade", ()),
        ("FanoutCancelsOwnFetches", "cascading", ()),
    },
    "seed": {
        ("ErrorBudgetBurn", "faulty", ("long", "20s")),
        ("ErrorBudgetBurn", "faulty", ("long", "40s")),
        ("DeadlineExceededHigh", "faulty", ()),
        ("ClientGoneHigh", "cascade", ()),
        # the incident: the cascade, then the write_failed burst pages
        ("ClientGoneHigh", "incident", ()),
        ("ErrorBudgetBurn", "incident", ("long", "20s")),
        ("ErrorBudgetBurn", "incident", ("long", "40s")),
    },
}


def _process(scheme: str, job: str, producers: list[str]) -> tuple[str, str]:
    """The producer script's scheme argument and mixes for one job."""
    if job.endswith("-consumer"):
        mixes = {f: {f"{r}/{c}": n for (r, c), n in FANOUTS[f].items()} for f in producers}
        return "consumer", json.dumps(mixes)
    if producers == ["incident"]:
        return "go", json.dumps({"incident": INCIDENT})
    return scheme, json.dumps({p: MIXES[p] for p in producers})


class Prom:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/alerts")["alerts"])


def alert_keys(
    scheme: Scheme, alerts: list[dict[str, Any]]
) -> set[tuple[str, str, tuple[str, ...]]]:
    prefix = scheme.cfg.alerts.prefix
    out = set()
    for a in alerts:
        labels = a.get("labels", a)
        name = labels["alertname"]
        if not name.startswith(prefix):
            continue
        extra = ("long", labels["long"]) if "long" in labels else ()
        who = scheme.key(labels) if any(k in labels for k in scheme.agg) else ""
        out.add((name.removeprefix(prefix), who, extra))
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prom, list[Scheme]]]:
    prometheus = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("e2e")
    script = tmp / "producer.py"
    script.write_text(PRODUCER)
    all_schemes = schemes()
    started = time.monotonic()  # the incident's burst is due BURST_AT s after its start
    scrape = []
    with ExitStack() as stack:
        for s in all_schemes:
            for job, producers in s.jobs.items():
                port = free_port()
                kind, mixes = _process(s.name, job, producers)
                argv = python_argv(str(script), str(port), kind, mixes)
                stack.enter_context(running(argv, port, log=tmp / f"{job}.log"))
                scrape.append(
                    {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                )
        rule_files = []
        for s in all_schemes:
            path = tmp / f"{s.name}.rules.yaml"
            path.write_text(s.files[f"alerts/{s.cfg.name}.rules.yaml"])
            rule_files.append(str(path))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rule_files,
            "scrape_configs": scrape,
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        argv = [
            prometheus,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        stack.enter_context(running(argv, port, log=tmp / "prometheus.log", timeout=30))
        prom = Prom(port)
        seed = next(s for s in all_schemes if s.name == "seed")
        BEFORE_BURST.update(_panels_before_the_burst(prom, seed, started + BURST_AT))
        _wait_for_alerts(prom, all_schemes, tmp)
        yield prom, all_schemes


# What the incident job's panels read while its write_failed series does not exist yet.
BEFORE_BURST: dict[str, list[list[tuple[dict[str, str], float]]]] = {}


def _panels_before_the_burst(
    prom: Prom, s: Scheme, burst: float
) -> dict[str, list[list[tuple[dict[str, str], float]]]]:
    """Every panel query, on the incident job only, once its ok and client_gone series
    have rates and before its first write_failed."""
    job = 'job=~"asset-incident"'
    counted = f'{s.cfg.metric}{{job="asset-incident", {s.cfg.reason_label}!="client_gone"}}'
    q = Queries(s.cfg)
    recorded = [q.rec_error_ratio(b.long) for b in s.cfg.burn_rates] + [q.rec_budget_remaining()]
    needed = [f"rate({counted}[{RATE_INTERVAL}])"] + [f"{r}{{{job}}}" for r in recorded]
    while time.monotonic() < burst - 8:
        try:
            ready = all(prom.query(e) for e in needed)
        except OSError:
            ready = False
        if ready:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the incident job had no rates before its burst was due")
    got = {}
    for panel, target in targets(s.dashboard()):
        expr = _substitute(target["expr"]).replace('job=~".*"', job)
        got.setdefault(panel["title"], []).append(prom.query(expr))
    assert not prom.query(f'{s.cfg.metric}{{job="asset-incident", source="write_failed"}}'), (
        "the burst began before the panels were read"
    )
    return got


def _wait_for_alerts(prom: Prom, all_schemes: list[Scheme], tmp: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    missing: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            firing = [a for a in prom.alerts() if a["state"] == "firing"]
        except OSError:
            firing = []
        missing = {s.name: EXPECTED[s.name] - alert_keys(s, firing) for s in all_schemes}
        if not any(missing.values()):
            time.sleep(3)  # a few more evaluations, so a wrong alert has a chance to show
            return
        time.sleep(1)
    logs = {p.name: p.read_text()[-2000:] for p in tmp.glob("*.log")}
    pytest.fail(f"alerts never fired within {timeout}s: {missing}\nlogs: {logs}")


@pytest.fixture(params=["default", "seed"])
def scheme(request: pytest.FixtureRequest, stack: tuple[Prom, list[Scheme]]) -> tuple[Prom, Scheme]:
    prom, all_schemes = stack
    return prom, next(s for s in all_schemes if s.name == request.param)


def test_expected_alerts_fire_and_no_others(scheme: tuple[Prom, Scheme]) -> None:
    prom, s = scheme
    active = alert_keys(s, [a for a in prom.alerts() if a["state"] in ("pending", "firing")])
    assert active == EXPECTED[s.name]
    # Nothing else fired at any point of the run (no flapping guard, no startup blip).
    ever = alert_keys(
        s, [m for m, _ in prom.query('max_over_time(ALERTS{alertstate="firing"}[5m])')]
    )
    assert ever == EXPECTED[s.name]


def test_every_recording_rule_has_data(scheme: tuple[Prom, Scheme]) -> None:
    prom, s = scheme
    records = [r["record"] for g in s.rules()["groups"] for r in g["rules"] if "record" in r]
    assert len(records) > 10
    empty = [r for r in records if not prom.query(r)]
    assert not empty
    q = Queries(s.cfg)
    expected = {"faulty": 9 / 25, "single": 0, "cascade": 0, "healthy": 0}
    for labels, value in prom.query(q.rec_error_ratio("20s")):
        if s.key(labels) == "incident":  # the burst (2.5 of 4.5 counted a second) is filling it
            assert 2 * s.cfg.budget < value <= 2.5 / 4.5 + 0.1, (labels, value)
            continue
        assert value == pytest.approx(expected[s.key(labels)], abs=0.1), (labels, value)
    legacy = {s.key(m): v for m, v in prom.query(q.rec_legacy_ratio())}
    assert legacy["cascade"] == pytest.approx(48 / 50, abs=0.05)  # what the old metric showed


def _substitute(expr: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def test_every_panel_query_returns_the_expected_series(scheme: tuple[Prom, Scheme]) -> None:
    prom, s = scheme
    r = s.cfg.reason_label
    got: dict[str, list[list[tuple[dict[str, str], float]]]] = {}
    for panel, target in targets(s.dashboard()):
        result = prom.query(_substitute(target["expr"]))
        assert result, f"{panel['title']} {target['refId']}: no series for {target['expr']}"
        assert all(math.isfinite(v) for _, v in result), (panel["title"], result)
        got.setdefault(panel["title"], []).append(result)

    def per(title: str, i: int = 0) -> dict[str, float]:
        return {s.key(m): v for m, v in got[title][i]}

    ok_value = s.cfg.reasons["ok"][0]
    by_reason = {m[r]: v for m, v in got["Outcomes by reason"][0]}
    assert set(by_reason) == {ok_value, "client_gone", "write_failed", "deadline_exceeded"}
    assert all(v > 0 for v in by_reason.values())
    (cg,), (wf,) = got["client_gone vs write_failed"]
    assert cg[1] > wf[1] > 0
    err = per("Error ratio (client_gone excluded)")
    assert err["faulty"] == pytest.approx(9 / 25, abs=0.08)
    assert err["cascade"] == 0
    if s.name == "default":
        assert err["healthy"] == 0
        assert err["single"] < 0.2
    dl = per("Deadline ratio")
    assert dl["faulty"] == pytest.approx(3 / 25, abs=0.05)
    assert dl["cascade"] == 0
    (legacy,), (now,) = got["Legacy-equivalent write_failed"]
    assert legacy[1] > now[1] > 0  # the old metric counted client_gone as write_failed
    assert all("instance" in m and r in m for m, _ in got["Outcomes per instance"][0])
    for series in got["SLO burn rate"]:
        burn = per("SLO burn rate", got["SLO burn rate"].index(series))
        assert burn["faulty"] == pytest.approx(3.6, abs=1), burn
        assert burn["cascade"] == 0
    budget = per("Error budget remaining")
    assert budget["faulty"] < 0 < budget["cascade"] == 1
    if s.cfg.consumer.enabled:
        fan = {
            (m["fanout"], i): v
            for i, r in enumerate(got["Fan-out: failed and self-cancelled fetches"])
            for m, v in r
            if "fanout" in m
        }
        assert fan[("cascading", 1)] == pytest.approx(10, rel=0.3)  # cancelled by us
        assert fan[("steady", 0)] == pytest.approx(2, rel=0.3)  # failed: upstream dropped
        assert fan[("steady", 1)] == 0
        share = {m["fanout"]: v for m, v in got["Fan-out: share cancelled by us"][0]}
        assert share["cascading"] == pytest.approx(10 / 21, abs=0.1)
        assert share["steady"] == 0


# It reads what the stack fixture saw; asking for the fixture makes sure it ran on this
# worker (under xdist, the module's other tests may all run on the other one).
@pytest.mark.usefixtures("stack")
def test_panels_read_zero_not_no_data_before_the_burst() -> None:
    """Issue 14, item 3: the incident job has no write_failed series (a Go counter never
    incremented). Every ratio panel and write_failed line reads 0 for it, not nothing,
    on a real Prometheus holding exactly that data."""
    got = BEFORE_BURST
    assert got, "the stack fixture did not read the panels before the burst"

    def only(title: str, i: int = 0) -> float:
        (series,) = got[title][i]
        return series[1]

    assert only("Error ratio (client_gone excluded)") == 0
    assert only("Deadline ratio") == 0
    assert only("client_gone vs write_failed", 0) > 0
    assert only("client_gone vs write_failed", 1) == 0
    assert only("Legacy-equivalent write_failed", 0) > 0  # client_gone, as the old metric
    assert only("Legacy-equivalent write_failed", 1) == 0
    for series in got["SLO burn rate"]:
        assert [v for _, v in series] == [0]
    assert only("Error budget remaining") == 1


def test_dashboard_variables_list_the_scraped_values(scheme: tuple[Prom, Scheme]) -> None:
    prom, s = scheme
    values = {}
    for v in s.dashboard()["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*), (\w+)\)", v["query"]["query"])
        assert m, v
        values[v["name"]] = set(
            prom.get(f"/api/v1/label/{m.group(2)}/values", **{"match[]": _substitute(m.group(1))})
        )
    producers = {j for j in s.jobs if not j.endswith("-consumer")}
    assert values["job"] == producers
    assert len(values["instance"]) == len(producers)
    if s.cfg.producer_label:
        assert values["producer"] == set(MIXES)


def test_grafana_managed_queries_agree_with_the_prometheus_alerts(
    scheme: tuple[Prom, Scheme],
) -> None:
    """Grafana's alerts query the raw metric (no recording rules): each returns series
    exactly for the alerts Prometheus fires."""
    prom, s = scheme
    grafana = yaml.safe_load(s.files[f"alerts/{s.cfg.name}.grafana.yaml"])
    holding = []
    for rule in grafana["groups"][0]["rules"]:
        (query,) = [d for d in rule["data"] if d["datasourceUid"] != "__expr__"]
        for labels, value in prom.query(query["model"]["expr"]):
            assert value > 0  # the threshold expression B fires on > 0
            # The title is the alert name plus the labels that make it unique.
            name = rule["title"].split()[0]
            holding.append({**labels, **rule["labels"], "alertname": name})
    assert alert_keys(s, holding) == EXPECTED[s.name]
