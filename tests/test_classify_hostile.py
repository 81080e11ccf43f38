"""Guarantees 7 and 8: hostile input never breaks classification, and every value
it produces stays in a closed, bounded set."""

from __future__ import annotations

import builtins
import errno
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

import errclass
from errclass import Outcome, Policy, Reason, Rule, classify
from errclass import rules as R
from errclass._names import qualified_name
from errclass._policy import LEAF_LIMIT
from errclass._rule import CHAIN_LIMIT

CG, DE, WF = Reason.CLIENT_GONE, Reason.DEADLINE_EXCEEDED, Reason.WRITE_FAILED


class Boom(Exception):
    """What every hostile method raises."""


def boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("hostile")


HOSTILE_METHODS = ("__str__", "__repr__", "__eq__", "__hash__", "__getattr__", "__getattribute__")


def hostile(base: type[BaseException], *methods: str, **attrs: Any) -> type[BaseException]:
    """A subclass of *base* whose *methods* (default: all of them) raise."""
    ns: dict[str, Any] = dict.fromkeys(methods or HOSTILE_METHODS, boom)
    ns.update(attrs)
    return type(f"Hostile{base.__name__}", (base,), ns)


def assert_sane(out: object) -> Outcome:
    assert type(out) is Outcome
    assert type(out.reason) is Reason
    assert out.error_type is None or type(out.error_type) is str
    assert (out.error_type is None) == (out.reason is Reason.OK)
    return out


# --------------------------------------------------------------------------- guarantee 7


@pytest.mark.parametrize("method", HOSTILE_METHODS)
@pytest.mark.parametrize(
    ("base", "reason"),
    [
        (ConnectionResetError, CG),
        (BrokenPipeError, CG),
        (TimeoutError, DE),
        (ssl.SSLEOFError, CG),
        (RuntimeError, WF),  # the uvloop rule reads str(): a raising __str__ is no match
        (ValueError, WF),  # the closed-file rule reads str() too
        (OSError, WF),  # the errno rules read .errno
        (KeyError, WF),
        (GeneratorExit, CG),
    ],
)
def test_a_hostile_method_does_not_change_the_class_verdict(
    method: str, base: type[BaseException], reason: Reason
) -> None:
    exc = hostile(base, method)()
    for role in ("producer", "consumer"):
        out = assert_sane(classify(exc, role=role))  # type: ignore[arg-type]
        assert out.reason is reason, (method, base, out)
        assert out.error_type == "_OTHER"  # a class made at run time


def test_everything_hostile_at_once() -> None:
    cls = hostile(ConnectionResetError, __bool__=boom, __len__=boom, __iter__=boom)
    exc = cls(errno.ECONNRESET, "reset")
    assert classify(exc) == Outcome(CG, "_OTHER", "connection_broken")
    # a hostile exception in a chain ends the chain there, but the rest still counts
    top = RuntimeError("top")
    top.__cause__ = exc
    assert classify(top).reason is CG
    group = ExceptionGroup("g", [hostile(KeyError)(), exc])
    assert classify(group).reason is WF


def test_hostile_attributes_used_by_rules() -> None:
    errno_raises = hostile(OSError, errno=property(boom))()
    assert_sane(classify(errno_raises))
    grpc_like = type("RpcError", (Exception,), {"__module__": "grpc", "code": boom})()
    assert classify(grpc_like).rule != "grpc_status"
    code_returns_junk = type("RpcError", (Exception,), {"__module__": "grpc", "code": lambda s: 5})
    assert classify(code_returns_junk()).reason is WF
    ws_code_raises = type(
        "WebSocketDisconnect", (Exception,), {"__module__": "starlette", "code": property(boom)}
    )
    assert classify(ws_code_raises()).reason is WF


def test_hostile_group_and_hostile_class() -> None:
    class BadGroup(ExceptionGroup):  # type: ignore[type-arg]
        exceptions = property(boom)  # type: ignore[assignment]

    assert_sane(classify(BadGroup("g", [BrokenPipeError()])))

    class Meta(type):
        def __getattribute__(cls, name: str) -> Any:
            if name in ("__mro__", "__module__", "__qualname__", "__name__"):
                raise Boom(name)
            return super().__getattribute__(name)

    weird = Meta("Weird", (ConnectionResetError,), {})
    assert classify(weird()) == Outcome(CG, "_OTHER", "connection_broken")
    bad_module = type("BadModule", (BrokenPipeError,), {"__module__": 42})
    assert classify(bad_module()) == Outcome(CG, "_OTHER", "connection_broken")


def test_cyclic_chains() -> None:
    a, b, c = KeyError("a"), ValueError("b"), BrokenPipeError()
    a.__cause__, b.__context__ = b, a  # a <-> b
    assert classify(a) == Outcome(WF, "KeyError", "default")
    b.__cause__ = c
    assert classify(a).reason is CG  # found past the cycle
    self_loop = RuntimeError("me")
    self_loop.__context__ = self_loop
    assert classify(self_loop).reason is WF
    g = ExceptionGroup("g", [KeyError()])
    g.exceptions[0].__context__ = g  # a leaf whose context is its own group
    assert classify(g).reason is WF


def test_chains_ten_thousand_deep() -> None:
    def chain(depth: int, bottom: BaseException, link: str) -> BaseException:
        top = bottom
        for i in range(depth):
            nxt = KeyError(i)
            setattr(nxt, link, top)
            top = nxt
        return top

    for link in ("__cause__", "__context__"):
        deep = chain(10_000, BrokenPipeError(), link)
        assert classify(deep) == Outcome(WF, "KeyError", "default")  # past the bounded walk
        near = chain(CHAIN_LIMIT - 2, BrokenPipeError(), link)
        assert classify(near).reason is CG  # within it
    nested: BaseException = BrokenPipeError()
    for _ in range(10_000):
        nested = ExceptionGroup("nest", [nested])
    assert classify(nested).reason is CG  # group leaves are found at any depth


def test_groups_with_ten_thousand_leaves() -> None:
    gone = ExceptionGroup("g", [BrokenPipeError() for _ in range(LEAF_LIMIT)])
    assert classify(gone) == Outcome(CG, "BrokenPipeError", "connection_broken")
    slow_last = ExceptionGroup("g", [*gone.exceptions[1:], TimeoutError()])
    assert classify(slow_last).reason is DE
    bug_last = ExceptionGroup("g", [*gone.exceptions[1:], KeyError()])
    assert classify(bug_last).reason is WF
    too_many = ExceptionGroup("g", [*gone.exceptions, BrokenPipeError()])
    assert classify(too_many) == Outcome(WF, "_OTHER", "too_many_leaves")
    chained = []
    for _ in range(LEAF_LIMIT):
        leaf = KeyError()
        leaf.__context__ = ConnectionResetError()
        chained.append(leaf)
    assert classify(ExceptionGroup("g", chained)).reason is CG


# --------------------------------------------------------------------------- property test


def _constructible(cls: type[BaseException]) -> bool:
    try:
        cls()
    except Exception:  # e.g. UnicodeDecodeError needs five arguments
        return False
    return True


STATIC_CLASSES: list[type[BaseException]] = [
    c
    for c in [*vars(builtins).values(), ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLError]
    if isinstance(c, type)
    and issubclass(c, BaseException)
    and not issubclass(c, BaseExceptionGroup)
    and _constructible(c)
]

POLICY_RULES = [
    Rule(CG, types=OSError, errnos=errno.EIO, chain=True, name="user_eio"),
    Rule(
        lambda e, r: DE if "x" in str(e) else None,
        when=lambda e: len(e.args) > 0,
        name="user_x",
    ),
    R.CLOSED_RESOURCE_IS_CLIENT_GONE,
]
RULE_NAMES = {r.name for r in (*R.DEFAULT, *POLICY_RULES)} | {
    "default",
    "generator_exit",
    "too_many_leaves",
    "unclassifiable",
}

ALLOWED_ERROR_TYPES = {"_OTHER", *(qualified_name(c, public=True) for c in STATIC_CLASSES)}

NAMES = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40
)
ERRNOS = [None, *sorted(errno.errorcode)[:40], errno.ENOTCONN, errno.ETIMEDOUT, 10057, -1, 2**40]
MESSAGES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["I/O operation on closed file", "closed=True the handler is closed"]),
)
# names a framework would use, so the by-name rules are exercised with fake classes
FAKE_ORIGINS = [
    ("grpc", "RpcError"),
    ("httpx", "HTTPError"),
    ("trio", "Cancelled"),
    ("starlette", "WebSocketDisconnect"),
    ("anyio", "BrokenResourceError"),
    ("aiohttp", "ClientConnectionResetError"),
    ("asyncio", "Spoofed"),
    ("builtins", "NotReallyBuiltin"),
]


@st.composite
def exception_classes(draw: st.DrawFn) -> type[BaseException]:
    base = draw(st.sampled_from(STATIC_CLASSES))
    if draw(st.booleans()):
        return base
    ns: dict[str, Any] = {}
    for method in draw(st.sets(st.sampled_from(HOSTILE_METHODS))):
        ns[method] = boom
    if draw(st.booleans()):
        module, name = draw(st.sampled_from(FAKE_ORIGINS))
        ns["__module__"] = module
        ns["code"] = draw(st.sampled_from([boom, lambda self: 5, lambda self: None]))
    else:
        name = draw(NAMES)  # any dynamic type name
        ns["__module__"] = draw(st.text(max_size=20))
    try:
        return type(name, (base,), ns)
    except TypeError:  # bases that cannot be subclassed together
        return base


def make(cls: type[BaseException], msg: str, err: int | None) -> BaseException:
    try:
        exc = cls(msg)
    except Exception:  # some classes need other arguments
        exc = cls()
    if err is not None:
        try:
            object.__setattr__(exc, "errno", err)
        except Exception:  # a read-only errno is fine too
            pass
    return exc


@st.composite
def exception_trees(draw: st.DrawFn) -> BaseException:
    n = draw(st.integers(1, 12))
    nodes = [
        make(draw(exception_classes()), draw(MESSAGES), draw(st.sampled_from(ERRNOS)))
        for _ in range(n)
    ]
    links = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.booleans())
    for src, dst, cause in draw(st.lists(links, max_size=2 * n)):  # cycles allowed
        try:
            object.__setattr__(nodes[src], "__cause__" if cause else "__context__", nodes[dst])
        except Exception:  # a hostile node may refuse
            pass
    groups = draw(st.lists(st.lists(st.integers(0, n - 1), min_size=1, max_size=5), max_size=3))
    for members in groups:
        try:  # the constructor's isinstance() checks may hit a hostile __class__
            nodes.append(BaseExceptionGroup("g", [nodes[i] for i in members]))
        except Boom:
            pass
    return nodes[draw(st.integers(0, len(nodes) - 1))]


POLICIES = [
    Policy(),
    Policy(fold_deadlines=True, generator_exit="ok"),
    Policy(rules=[]),
    Policy(before=POLICY_RULES[:2], after=POLICY_RULES[2:]),
]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    exc=exception_trees(),
    role=st.sampled_from(["producer", "consumer"]),
    policy=st.sampled_from(POLICIES),
)
def test_property_classify_always_returns_a_bounded_outcome(
    exc: BaseException, role: str, policy: Policy
) -> None:
    out = assert_sane(classify(exc, role=role, policy=policy))  # type: ignore[arg-type]
    assert out.error_type is None or out.error_type in ALLOWED_ERROR_TYPES, out
    assert out.rule in RULE_NAMES, out
    assert classify(exc, role=role, policy=policy) == out  # deterministic  # type: ignore[arg-type]


# --------------------------------------------------------------------------- guarantee 8


@given(name=NAMES, module=st.text(max_size=40), msg=st.text())
@settings(max_examples=200, deadline=None)
def test_error_type_of_a_run_time_class_is_other_whatever_its_names(
    name: str, module: str, msg: str
) -> None:
    for base in (ConnectionResetError, KeyError, RuntimeError, TimeoutError, Exception):
        cls = type(name, (base,), {"__module__": module})
        out = classify(cls(msg))
        assert out.error_type == "_OTHER", (name, module, out)
        assert out.rule in RULE_NAMES, out


def test_error_type_of_a_module_level_class_outside_stdlib_and_rules() -> None:
    # importable (tests.test_classify_hostile.Boom) but neither stdlib nor named by a rule
    assert classify(Boom()).error_type == "_OTHER"
    assert classify(Boom(), policy=Policy(before=[Rule(CG, types=Boom)])).error_type == (
        "tests.test_classify_hostile.Boom"
    )
    assert classify(KeyError()).error_type == "KeyError"
    assert classify(ssl.SSLEOFError()).error_type == "ssl.SSLEOFError"


def test_label_values_stay_in_the_closed_sets() -> None:
    registry = CollectorRegistry()
    plain = Counter("hostile_outcomes", "x", ["producer", "reason"], registry=registry)
    compat = Counter("hostile_compat", "x", ["reason", "error_type"], registry=registry)
    sinks = (errclass.PrometheusSink(plain), errclass.PrometheusSink.compat(compat))
    raisers: list[Callable[[], BaseException]] = [
        lambda: type(f"Dyn{id(object())}", (ValueError,), {})("secret message"),
        lambda: hostile(ConnectionResetError)(),
        lambda: hostile(KeyError)(),
        lambda: ExceptionGroup("g", [TimeoutError(), hostile(OSError)()]),
        lambda: GeneratorExit(),
    ]
    for make_exc in raisers:

        @errclass.track(*sinks, name="hostile")
        def producer() -> None:
            raise make_exc()  # noqa: B023 - called at once

        with pytest.raises(BaseException):  # noqa: B017 - any of the above
            producer()
    values = {r.value for r in Reason}
    seen: set[str] = set()
    for metric in registry.collect():
        for s in metric.samples:
            assert set(s.labels) <= {"producer", "reason", "error_type"}
            assert s.labels.get("producer", "hostile") == "hostile"
            assert s.labels["reason"] in values
            assert s.labels.get("error_type", "") in values | {""}
            if s.value:
                seen.add(s.labels["reason"])
    assert {"client_gone", "deadline_exceeded", "write_failed"} <= seen
