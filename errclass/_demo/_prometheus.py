"""A real Prometheus for the demo: the shipped rules, time-compressed; its HTTP API.

Time is compressed by ``SCALE``: one second of the demo stands for one minute.
Prometheus scrapes and evaluates every second, and the rules are errclass's
default render with every range, ``for:`` and group interval divided by
``SCALE`` (5m -> 5s, 1h -> 60s, ``for: 2m`` -> 2s). The low-traffic guard
``alerts.min_events`` is a count of failures in a window, so it needs no scaling.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCALE = 60
INTERVAL = "1s"  # scrape and evaluation interval
MIN_RANGE = 3.0  # seconds: a range selector needs a few 1s scrapes
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DUR = r"(?:\d+(?:ms|[smhdwy]))+"
_RANGE = re.compile(rf"\[\s*({_DUR})\s*(?::\s*({_DUR})?\s*)?\]")
_OFFSET = re.compile(rf"\boffset\s+(-?)({_DUR})")


class DemoError(Exception):
    """A clear, expected failure: a missing binary, a busy port. Exit status 2."""


def seconds(duration: str) -> float:
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", duration))


def _fmt(secs: float) -> str:
    return f"{secs:g}s" if secs == int(secs) else f"{round(secs * 1000)}ms"


def _scaled(duration: str, floor: float = 0.0) -> str:
    return _fmt(max(seconds(duration) / SCALE, floor))


def scale_expr(expr: str) -> str:
    def ranges(m: re.Match[str]) -> str:
        step = f":{_scaled(m.group(2))}" if m.group(2) else (":" if ":" in m.group(0) else "")
        return f"[{_scaled(m.group(1), MIN_RANGE)}{step}]"

    expr = _RANGE.sub(ranges, expr)
    return _OFFSET.sub(lambda m: f"offset {m.group(1)}{_scaled(m.group(2))}", expr)


def shipped_rules() -> tuple[str, dict[str, Any]]:
    """errclass's default Prometheus rule file, rendered now (the committed
    ``alerts/errclass.rules.yaml``), and the config it was rendered from."""
    from errclass import monitoring

    data = monitoring.to_data(monitoring.Config())
    cfg = monitoring.from_mapping(data)
    path = f"alerts/{cfg.name}.rules.yaml"
    files = monitoring.render(cfg)
    if path not in files:
        raise DemoError(f"errclass render produced no {path}; files: {sorted(files)}")
    return files[path], data


def compress(rules_text: str) -> str:
    """The rule file with every duration divided by SCALE."""
    import yaml

    doc = yaml.safe_load(rules_text)
    for group in doc.get("groups", []):
        if "interval" in group:
            group["interval"] = _scaled(group["interval"], 1.0)
        for rule in group.get("rules", []):
            rule["expr"] = scale_expr(str(rule["expr"]))
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = _scaled(str(rule[key]))
    return yaml.safe_dump(doc, sort_keys=False, width=100)


def config_text(rules: Path, targets: dict[str, str]) -> str:
    import yaml

    return yaml.safe_dump(
        {
            "global": {
                "scrape_interval": INTERVAL,
                "evaluation_interval": INTERVAL,
                "scrape_timeout": "900ms",
            },
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        },
        sort_keys=False,
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM if the demo dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(cmd: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if os.name == "posix" else None,  # noqa: PLW1509
            **kw,
        )
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Stop one child by its PID: SIGTERM, then SIGKILL after *grace* seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Prometheus:
    """A Prometheus server started for the demo, and a client of its HTTP API."""

    def __init__(self, binary: str, workdir: Path, port: int, rules_text: str) -> None:
        self.binary, self.workdir, self.port = binary, workdir, port
        self.url = f"http://127.0.0.1:{port}"
        self.rules_path = workdir / "rules.yaml"
        self.rules_path.write_text(rules_text, encoding="utf-8")
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        import httpx

        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def start(self, targets: dict[str, str], timeout: float = 30.0) -> None:
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(config_text(self.rules_path, targets), encoding="utf-8")
        cmd = [
            self.binary,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.proc = spawn(cmd, self.log)
        self._wait(self._ready, timeout, "Prometheus did not become ready")

    def _ready(self) -> bool:
        try:
            return self.http.get("/-/ready").status_code == 200
        except Exception:
            return False

    def _wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                raise DemoError(
                    f"prometheus exited with status {self.proc.returncode}:\n  " + "\n  ".join(tail)
                )
            if cond():
                return
            time.sleep(0.1)
        raise DemoError(f"{what} within {timeout:g}s (log: {self.log})")

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        self._wait(cond, timeout, what)

    def stop(self) -> None:
        self.http.close()
        stop(self.proc)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(path, params=params)
        body: dict[str, Any] = r.json()
        if body.get("status") != "success":
            raise DemoError(f"Prometheus {path} {params}: {body.get('error', r.text)}")
        return body

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        """The raw API response of an instant query (optionally at time *at*)."""
        return self._get("/api/v1/query", query=expr, **({"time": at} if at else {}))

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["data"]["alerts"]
        return alerts

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def buildinfo(self) -> dict[str, Any]:
        info: dict[str, Any] = self._get("/api/v1/status/buildinfo")["data"]
        return info
