"""The WSGI matrix: real servers on loopback, real clients, counts scraped over HTTP.

One server per stack (gunicorn sync and gthread in prometheus_client
multiprocess mode, werkzeug, wsgiref), each stopped by its PID. Every scenario
asserts the exact per-reason deltas of ``errclass_outcomes_total``: the
expected reason once per stream and nothing else, so nothing is lost or
counted twice. Cells a stack cannot support assert what it actually does.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ROOT,
    fin_close,
    free_port,
    holds_for,
    http_get,
    outcomes,
    python_argv,
    resetting_upstream,
    rst_close,
    running,
    wait_for_outcomes,
    wait_until,
)

pytestmark = pytest.mark.slow

PRODUCER = "wsgi_matrix"
WORKER_TIMEOUT = 2  # gunicorn --timeout; werkzeug/wsgiref use a 1 s socket timeout
STACKS = ["gunicorn-sync", "gunicorn-gthread", "werkzeug", "wsgiref"]


@dataclass
class Server:
    stack: str
    port: int

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def before(self) -> dict[str, float]:
        return outcomes(self.metrics, PRODUCER)

    def delta(self, before: dict[str, float], count: int, timeout: float = 15) -> dict[str, float]:
        return wait_for_outcomes(self.metrics, PRODUCER, before, count, timeout)

    def pid(self) -> int:
        with urllib.request.urlopen(self.url("/pid"), timeout=10) as resp:
            return int(resp.read())


def gunicorn_argv(worker: str, port: int, workers: int = 1) -> list[str]:
    # --threads > 1 would silently turn a sync worker into gthread
    threads = "4" if worker == "gthread" else "1"
    return python_argv(
        "-m", "gunicorn",
        "-k", worker,
        "--threads", threads,
        "-w", str(workers),
        "--timeout", str(WORKER_TIMEOUT),
        "--graceful-timeout", "2",
        "-b", f"127.0.0.1:{port}",
        "-c", "tests/servers/wsgi_gunicorn_conf.py",
        "tests.servers.wsgi_app:app",
    )  # fmt: skip


@pytest.fixture(scope="module", params=STACKS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    stack: str = request.param
    port = free_port()
    tmp = tmp_path_factory.mktemp(stack)
    env = {"PYTHONPATH": str(ROOT)}
    if stack.startswith("gunicorn"):
        (tmp / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "prom")
        argv = gunicorn_argv(stack.split("-")[1], port)
    else:
        argv = python_argv("-m", "tests.servers.wsgi_app", "--server", stack, "--port", str(port))
    log = tmp / "server.log"
    with running(argv, port, env=env, cwd=ROOT, log=log):
        yield Server(stack, port)
    print(Path(log).read_text()[-3000:])


def test_stream_completes(server: Server) -> None:
    before = server.before()
    for _ in range(3):
        resp = httpx.get(server.url("/slow?n=5&delay=0.01&size=100"), timeout=10)
        assert resp.status_code == 200
        assert len(resp.content) == 500
    assert server.delta(before, 3) == {"ok": 3}


@pytest.mark.parametrize("close", [fin_close, rst_close], ids=["fin", "rst"])
def test_client_leaves_slow_producer(server: Server, close: object) -> None:
    before = server.before()
    for _ in range(2):
        sock = http_get(server.port, "/slow?n=300&delay=0.02&size=100", read=100)
        close(sock)  # type: ignore[operator]
    # The server's next write fails; it swallows the error and closes the body.
    assert server.delta(before, 2) == {"client_gone": 2}


def test_client_leaves_fast_producer(server: Server) -> None:
    """A producer that never sleeps: the server's write blocks once the socket
    buffers are full, so the client leaving fails a write and closes the body."""
    before = server.before()
    for _ in range(2):
        sock = http_get(server.port, "/fast?n=2000&size=65536", read=65536)
        rst_close(sock)
    assert server.delta(before, 2) == {"client_gone": 2}


def test_fast_producer_that_fits_in_buffers_is_ok(server: Server) -> None:
    """What WSGI cannot see: a body that fits in the socket buffers was written
    completely before the client left, so the server reports success, and so do we."""
    before = server.before()
    sock = http_get(server.port, "/fast?n=4&size=1024", read=1)
    # the server has finished writing into the kernel's buffers (and recorded it)
    wait_until(lambda: sum(server.before().values()) > sum(before.values()), what="a record")
    fin_close(sock)
    assert server.delta(before, 1) == {"ok": 1}


def test_client_stalls_past_server_deadline(server: Server) -> None:
    before = server.before()
    pid = server.pid() if server.stack.startswith("gunicorn") else None
    sock = http_get(server.port, "/fast?n=4000&size=65536", read=1)  # and never reads again
    try:
        if server.stack == "gunicorn-gthread":
            # gthread's worker timeout watches only the worker's main loop; a thread
            # blocked writing to a stalled client is never interrupted. Nothing is
            # recorded while it blocks, past the worker timeout (the scenario's own
            # wait, watched: it ends early if something is recorded); the client
            # leaving finally ends it.
            holds_for(lambda: server.before() == before, WORKER_TIMEOUT + 2)
            assert server.delta(before, 1, timeout=0) == {}
            rst_close(sock)
            assert server.delta(before, 1) == {"client_gone": 1}
            return
        # gunicorn sync: the arbiter's SIGABRT makes sys.exit(1) inside the blocked
        # write; werkzeug/wsgiref: the 1 s socket timeout raises TimeoutError there.
        assert server.delta(before, 1, timeout=WORKER_TIMEOUT + 10) == {"deadline_exceeded": 1}
        if pid is not None:
            assert server.pid() != pid, "the SystemExit must still end the worker"
    finally:
        rst_close(sock)


def test_producer_overruns_worker_timeout(server: Server) -> None:
    """A producer slower than the worker timeout: gunicorn sync interrupts it with
    SystemExit(1) inside the generator (deadline_exceeded, and the worker exits);
    the other servers have no such timeout and the stream completes."""
    before = server.before()
    pid = server.pid() if server.stack.startswith("gunicorn") else None
    try:
        httpx.get(server.url(f"/slow?n=1&delay={WORKER_TIMEOUT + 1.5}"), timeout=15)
    except httpx.HTTPError:
        assert server.stack == "gunicorn-sync"  # the worker died mid-response
    if server.stack == "gunicorn-sync":
        assert server.delta(before, 1) == {"deadline_exceeded": 1}
        assert server.pid() != pid
    else:
        assert server.delta(before, 1) == {"ok": 1}


def test_server_write_fault(server: Server) -> None:
    before = server.before()
    for _ in range(2):
        try:
            httpx.get(server.url("/devfull?n=10"), timeout=10)
        except httpx.HTTPError:
            pass  # the response is cut short: the client may see a protocol error
    assert server.delta(before, 2) == {"write_failed": 2}


def test_upstream_read_fails(server: Server) -> None:
    before = server.before()
    with resetting_upstream() as upstream_port:
        for _ in range(2):
            try:
                httpx.get(server.url(f"/upstream?port={upstream_port}"), timeout=10)
            except httpx.HTTPError:
                pass
        assert server.delta(before, 2) == {"write_failed": 2}


# -- the middleware's contract, in-process (no server) ---------------------------------


class Body:
    """An app iterable that counts close() calls, like a file-backed response."""

    def __init__(self, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed += 1


def _app(body: object, *, raises: BaseException | None = None) -> object:
    def app(environ: dict[str, object], start_response: object) -> object:
        if raises is not None:
            raise raises
        return body

    return app


def _serve(app: object, environ: dict[str, object] | None = None, take: int | None = None) -> None:
    """What a WSGI server does: iterate (maybe not to the end), then close."""
    from errclass.integrations.wsgi import ErrclassMiddleware

    wrapped = ErrclassMiddleware(app, name="inproc", logger=None)  # type: ignore[arg-type]
    response = wrapped(environ or {}, lambda *a: None)
    try:
        for i, _chunk in enumerate(response):
            if take is not None and i + 1 >= take:
                break
    finally:
        response.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fold", "reason"), [(False, "deadline_exceeded"), (True, "client_gone")])
def test_gunicorn_worker_timeout_honours_fold_deadlines(fold: bool, reason: str) -> None:
    import errclass
    from errclass.integrations.wsgi import ErrclassMiddleware

    seen: list[errclass.Event] = []

    def app(environ: object, start_response: object) -> list[bytes]:
        raise SystemExit(1)  # what gunicorn's SIGABRT handler raises in the worker

    policy = errclass.Policy(fold_deadlines=fold)
    wrapped = ErrclassMiddleware(app, seen.append, name="w", logger=None, policy=policy)
    with pytest.raises(SystemExit):
        wrapped({"gunicorn.socket": object()}, lambda *a: None)
    assert [(e.reason, e.outcome.rule) for e in seen] == [(reason, "gunicorn_worker_timeout")]


def test_exhausted_then_closed_is_ok_and_close_is_forwarded_once(events: list) -> None:
    body = Body([b"a", b"b"])
    _serve(_app(body))
    assert [e.reason for e in events] == ["ok"]
    assert body.closed == 1


def test_closed_early_is_client_gone(events: list) -> None:
    body = Body([b"a", b"b", b"c"])
    _serve(_app(body), take=1)
    assert [e.reason for e in events] == ["client_gone"]
    assert body.closed == 1


def test_producer_error_propagates_unchanged_and_counts_once(events: list) -> None:
    error = OSError(28, "No space left on device")
    body = Body([b"a"], fail=error)
    with pytest.raises(OSError) as raised:
        _serve(_app(body))
    assert raised.value is error
    assert [(e.reason, e.exception) for e in events] == [("write_failed", error)]
    assert body.closed == 1


def test_app_raising_before_a_body_counts_once(events: list) -> None:
    error = KeyError("x")
    with pytest.raises(KeyError) as raised:
        _serve(_app(None, raises=error))
    assert raised.value is error
    assert [e.reason for e in events] == ["write_failed"]


def test_server_failure_at_close_is_classified(events: list) -> None:
    """The server's own failed write (the final chunk) is active while it closes us."""
    from errclass.integrations.wsgi import ErrclassMiddleware

    response = ErrclassMiddleware(_app([b"a"]), name="inproc", logger=None)({}, lambda *a: None)  # type: ignore[arg-type]
    list(response)
    try:
        raise BrokenPipeError(32, "Broken pipe")
    except BrokenPipeError:
        response.close()  # type: ignore[attr-defined]
    assert [e.reason for e in events] == ["client_gone"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({"gunicorn.socket": object()}, "deadline_exceeded"), ({}, "write_failed")],
    ids=["gunicorn", "elsewhere"],
)
def test_system_exit_1_is_gunicorns_worker_timeout_only_under_gunicorn(
    events: list, environ: dict[str, object], expected: str
) -> None:
    error = SystemExit(1)
    with pytest.raises(SystemExit) as raised:
        _serve(_app(Body([b"a"], fail=error)), environ)
    assert raised.value is error
    assert [e.reason for e in events] == [expected]


def test_close_twice_and_gc_record_nothing_more(events: list) -> None:
    import gc

    from errclass.integrations.wsgi import ErrclassMiddleware

    body = Body([b"a"])
    response = ErrclassMiddleware(_app(body), name="inproc", logger=None)({}, lambda *a: None)  # type: ignore[arg-type]
    list(response)
    response.close()  # type: ignore[attr-defined]
    response.close()  # type: ignore[attr-defined]
    del response
    gc.collect()
    assert [e.reason for e in events] == ["ok"]


def test_a_server_that_never_closes_still_records_at_gc(events: list) -> None:
    import gc

    from errclass.integrations.wsgi import ErrclassMiddleware

    response = ErrclassMiddleware(_app([b"a", b"b"]), name="inproc", logger=None)(
        {}, lambda *a: None
    )  # type: ignore[arg-type]
    next(iter(response))
    del response
    gc.collect()
    assert [e.reason for e in events] == ["client_gone"]


def test_bad_app_is_a_clear_error() -> None:
    from errclass.integrations.wsgi import ErrclassMiddleware

    with pytest.raises(TypeError, match="wraps a WSGI callable"):
        ErrclassMiddleware("not an app")  # type: ignore[arg-type]
