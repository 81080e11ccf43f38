"""bench/_load.py starts its servers again on another port when theirs was taken
between the pick and the bind (by another process's connection): another try, not a
failed bench."""

from __future__ import annotations

import importlib
import os
import socket
import sys
from types import ModuleType

import pytest

from tests.support import ROOT, free_port

SERVER = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', int(sys.argv[1])))\n"  # no SO_REUSEADDR: a taken port fails
    "s.listen()\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("_load")


def test_a_server_whose_port_was_taken_is_started_again_on_another(
    load: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:  # as a client's connection holds its port: not listening
        taken.bind(("127.0.0.1", free_port()))
        ports = [taken.getsockname()[1], free_port()]
        picked = iter(ports)
        monkeypatch.setattr(load, "free_port", lambda: next(picked))
        started: list[int] = []

        def argv(port: int) -> list[str]:
            started.append(port)
            return [sys.executable, "-c", SERVER, str(port)]

        proc, port = load.start(argv, dict(os.environ))
        try:
            assert (port, started) == (ports[1], ports)
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        finally:
            load.stop(proc)
        assert proc.returncode is not None


def test_a_server_that_never_listens_fails_after_three_tries(
    load: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[int] = []

    def argv(port: int) -> list[str]:
        tries.append(port)
        return [sys.executable, "-c", "raise SystemExit(3)"]

    with pytest.raises(RuntimeError, match="exited with 3"):
        load.start(argv, dict(os.environ))
    assert len(tries) == 3
