"""The gRPC matrix: a sync and a grpc.aio server with errclass interceptors.

Real servers on loopback (stopped by PID), real clients: grpc stubs, and a raw
HTTP/2 client on a plain socket (h2) for the cells a stub cannot produce: a
FIN or RST mid-stream, and a client that stops reading. Counts are scraped
from the server's Prometheus endpoint and must be exact per producer (the full
method name): the expected reason once per RPC, nothing else.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.support import (
    ROOT,
    fin_close,
    free_port,
    outcomes,
    python_argv,
    resetting_upstream,
    rst_close,
    running,
    sample,
    scrape,
    wait_for_outcomes,
    wait_for_port,
    wait_until,
)

pytestmark = pytest.mark.slow

ITEMS = "/matrix.Matrix/Items"
UNARY = "/matrix.Matrix/Unary"


def req(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@dataclass
class Server:
    stack: str
    port: int
    metrics_port: int
    channel: grpc.Channel

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def before(self, producer: str = ITEMS) -> dict[str, float]:
        return outcomes(self.metrics, producer)

    def delta(
        self, before: dict[str, float], count: int, producer: str = ITEMS, timeout: float = 15
    ) -> dict[str, float]:
        return wait_for_outcomes(self.metrics, producer, before, count, timeout)

    def items(self, request: bytes, timeout: float | None = None) -> grpc.Call:
        stub = self.channel.unary_stream(ITEMS)
        return stub(request, timeout=timeout)  # type: ignore[no-any-return]

    def unary(self) -> grpc.UnaryUnaryMultiCallable:
        return self.channel.unary_unary(UNARY)

    def unary_started(self) -> float:
        return sample(scrape(self.metrics), "matrix_calls_started_total", method="Unary")


@pytest.fixture(scope="module", params=["grpc-sync", "grpc-aio"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    stack: str = request.param
    port, metrics_port = free_port(), free_port()
    argv = python_argv(
        "-m", "tests.servers.grpc_server", "--port", str(port), "--metrics-port", str(metrics_port)
    )  # fmt: skip
    if stack == "grpc-aio":
        argv.append("--aio")
    log = tmp_path_factory.mktemp(stack) / "server.log"
    with running(argv, port, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, log=log):
        wait_for_port(metrics_port)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield Server(stack, port, metrics_port, channel)
        finally:
            channel.close()
    print(Path(log).read_text()[-3000:])


# -- a raw HTTP/2 gRPC client: the cells a stub cannot produce -------------------


def raw_call(
    port: int, request: bytes, *, read: int = 1, grpc_timeout: str | None = None
) -> socket.socket:
    """Start a unary-stream call on a bare socket and return it once *read* bytes
    of response DATA arrived. Received data is not acknowledged afterwards, so
    a client that stops reading here really stalls the server's flow control."""
    import h2.connection
    import h2.events

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", ITEMS),
        (":authority", f"127.0.0.1:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    if grpc_timeout is not None:
        headers.append(("grpc-timeout", grpc_timeout))
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, headers)
    conn.send_data(stream_id, b"\x00" + len(request).to_bytes(4, "big") + request, end_stream=True)
    sock.sendall(conn.data_to_send())
    got = 0
    while got < read:
        data = sock.recv(65536)
        if not data:
            raise AssertionError("the server closed the connection before responding")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                got += len(event.data)
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                raise AssertionError(f"the call ended before {read} bytes: {event}")
        sock.sendall(conn.data_to_send())
    return sock


# -- the matrix ----------------------------------------------------------------------


def test_stream_completes(server: Server) -> None:
    before = server.before()
    for _ in range(3):
        assert len(list(server.items(req(n=5, delay=0.01)))) == 5
    assert server.delta(before, 3) == {"ok": 3}


@pytest.mark.parametrize("close", [fin_close, rst_close], ids=["fin", "rst"])
def test_client_leaves_slow_producer(server: Server, close: object) -> None:
    before = server.before()
    for _ in range(2):
        sock = raw_call(server.port, req(n=300, delay=0.02, size=100), read=100)
        close(sock)  # type: ignore[operator]
    # The transport's end cancels the call: the handler is dropped (sync) or cancelled (aio).
    assert server.delta(before, 2) == {"client_gone": 2}


def test_client_leaves_fast_producer(server: Server) -> None:
    """A producer that never sleeps (in aio: never awaits anything of its own)."""
    before = server.before()
    for _ in range(2):
        sock = raw_call(server.port, req(mode="fast", n=100_000, size=1024), read=1024)
        rst_close(sock)
    assert server.delta(before, 2) == {"client_gone": 2}


def test_client_stalls_past_deadline(server: Server) -> None:
    """The client stops reading (no WINDOW_UPDATE); the server enforces the call's
    deadline (``grpc-timeout``) and cancels it. gRPC has no server-only deadline:
    the deadline a gRPC server enforces is the one the call carries."""
    before = server.before()
    sock = raw_call(
        server.port, req(mode="fast", n=100_000, size=16384), read=1, grpc_timeout="1000m"
    )
    try:
        assert server.delta(before, 1) == {"deadline_exceeded": 1}
    finally:
        rst_close(sock)


def test_server_write_fault(server: Server) -> None:
    before = server.before()
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as err:
            list(server.items(req(mode="devfull", n=10)))
        assert err.value.code() == grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    assert server.delta(before, 2) == {"write_failed": 2}


def test_upstream_read_fails(server: Server) -> None:
    before = server.before()
    with resetting_upstream() as upstream_port:
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                list(server.items(req(mode="upstream", port=upstream_port)))
        assert server.delta(before, 2) == {"write_failed": 2}


def test_client_deadline(server: Server) -> None:
    before, before_unary = server.before(), server.before(UNARY)
    with pytest.raises(grpc.RpcError) as err:
        list(server.items(req(n=100, delay=0.05), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as err:
        server.unary()(req(delay=1.0), timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert server.delta(before, 1) == {"deadline_exceeded": 1}
    # sync: the handler runs on and returns; the RPC is already over, so it counts then.
    assert server.delta(before_unary, 1, UNARY) == {"deadline_exceeded": 1}


def test_client_cancel(server: Server) -> None:
    before, before_unary = server.before(), server.before(UNARY)
    call = server.items(req(n=300, delay=0.02))
    next(call)
    call.cancel()
    started = server.unary_started()
    future = server.unary().future(req(delay=1.0))
    wait_until(lambda: server.unary_started() > started, what="the server entered Unary")
    future.cancel()
    assert server.delta(before, 1) == {"client_gone": 1}
    assert server.delta(before_unary, 1, UNARY) == {"client_gone": 1}


@pytest.mark.parametrize(
    ("code", "expected"),
    [("NOT_FOUND", "ok"), ("INTERNAL", "write_failed"), ("DEADLINE_EXCEEDED", "deadline_exceeded")],
)
def test_abort_is_the_applications_answer(server: Server, code: str, expected: str) -> None:
    """``context.abort(code)`` records by status code, as OpenTelemetry's server conventions."""
    before, before_unary = server.before(), server.before(UNARY)
    with pytest.raises(grpc.RpcError) as err:
        list(server.items(req(mode="abort", code=code, n=5)))
    assert err.value.code() == grpc.StatusCode[code]  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError):
        server.unary()(req(mode="abort", code=code))
    assert server.delta(before, 1) == {expected: 1}
    assert server.delta(before_unary, 1, UNARY) == {expected: 1}


def test_unary_completes(server: Server) -> None:
    before = server.before(UNARY)
    assert server.unary()(req(delay=0)) == b"done"
    assert server.delta(before, 1, UNARY) == {"ok": 1}


# -- options, in-process ------------------------------------------------------------


def test_status_reason_follows_opentelemetry_server_conventions() -> None:
    from errclass.integrations.grpc import status_reason

    errors = {"UNKNOWN", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
    for code in grpc.StatusCode:
        expected = (
            "deadline_exceeded"
            if code is grpc.StatusCode.DEADLINE_EXCEEDED
            else "write_failed"
            if code.name in errors
            else "ok"
        )
        assert status_reason(code) == expected, code


@contextmanager
def in_process(interceptor: object, handlers: dict[str, object]) -> Iterator[grpc.Channel]:
    """A sync server on loopback serving *handlers* as service ``t.T`` behind
    *interceptor*, and a channel to it; the server is stopped on the way out."""
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[interceptor])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(None)


def test_custom_abort_mapping_and_sinks_in_process() -> None:
    """``aborted=`` decides what a deliberate status means; callable sinks get the events."""

    import errclass
    from errclass.integrations.grpc import ServerInterceptor

    seen: list[errclass.Event] = []

    def handler(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"one"
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    interceptor = ServerInterceptor(
        seen.append, name="custom", logger=None, aborted=lambda code: errclass.Reason.WRITE_FAILED
    )
    handlers = {"S": grpc.unary_stream_rpc_method_handler(handler)}
    with in_process(interceptor, handlers) as channel, pytest.raises(grpc.RpcError) as err:
        list(channel.unary_stream("/t.T/S")(b""))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert [(e.producer, e.reason, e.outcome.error_type) for e in seen] == [
        ("custom", "write_failed", "NOT_FOUND")
    ]


def test_bad_abort_mapping_is_a_clear_error() -> None:
    from errclass.integrations.grpc import ServerInterceptor

    with pytest.raises(TypeError, match="aborted="):
        ServerInterceptor(aborted="ok")  # type: ignore[arg-type]


@pytest.mark.parametrize(("fold", "reason"), [(False, "deadline_exceeded"), (True, "client_gone")])
def test_decided_deadline_honours_fold_deadlines(fold: bool, reason: str) -> None:
    """An outcome the interceptor decides (here a deliberate DEADLINE_EXCEEDED abort)
    is folded like any other under ``Policy(fold_deadlines=True)``."""

    import errclass
    from errclass.integrations.grpc import ServerInterceptor

    seen: list[errclass.Event] = []

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "took too long upstream")

    policy = errclass.Policy(fold_deadlines=fold)
    interceptor = ServerInterceptor(seen.append, name="fold", logger=None, policy=policy)
    handlers = {"U": grpc.unary_unary_rpc_method_handler(handler)}
    with in_process(interceptor, handlers) as channel, pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/t.T/U")(b"")
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert [(e.reason, e.outcome.error_type, e.outcome.rule) for e in seen] == [
        (reason, "DEADLINE_EXCEEDED", "grpc_abort")
    ]
