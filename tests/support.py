"""Shared test helpers: required tools, free loopback ports, processes stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REQUIRE_TOOLS = os.environ.get("ERRCLASS_REQUIRE_TOOLS") == "1"


def require_tool(name: str) -> str:
    """The path of *name*; skips locally, fails under ERRCLASS_REQUIRE_TOOLS=1 (CI)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (make test installs it as root: apt-get install prometheus)"
        if REQUIRE_TOOLS:
            pytest.fail(msg + "; ERRCLASS_REQUIRE_TOOLS=1 forbids skipping")
        pytest.skip(msg)
    return path


def shared_fixture(*parts: str) -> Path:
    """A file under ../shared/fixtures; skips in a user's checkout, which has no ../shared."""
    path = SHARED.joinpath("fixtures", *parts)
    if not path.exists():
        if REQUIRE_TOOLS:
            pytest.fail(f"{path} is missing; CI always has ../shared")
        pytest.skip(f"{path} is missing: ../shared exists only beside the project's own checkout")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop *proc* by its own PID (and its process group): SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@contextmanager
def running(
    argv: Sequence[str],
    port: int | None = None,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run *argv* in its own process group, wait for *port*, always stop it by PID."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        list(argv),
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    try:
        if port is not None:
            wait_for_port(port, timeout, proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def scrape(url: str, timeout: float = 5.0) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of a Prometheus exposition over HTTP: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)
