"""The fast classification paths (per-class plans, scan() of plain chains through
per-rule tables, memoized type checks, cached outcomes) agree with a
straightforward rule-by-rule reading of the table."""

from __future__ import annotations

import asyncio
import errno
import gc
import weakref
from collections import deque
from collections.abc import Iterator

import httpcore
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import errclass
from errclass import Outcome, Policy, Rule
from errclass._outcome import R_FAILED as WF
from errclass._outcome import R_GONE, SEVERITY
from errclass._rule import CACHE_LIMIT, EXACT, WalkTable, chain, scan

ERRNOS = (errno.ENOTCONN, errno.EBADF, errno.ETIMEDOUT, errno.EPIPE, errno.ENETRESET, 0)


def _make(kind: int, n: int) -> BaseException:
    e = ERRNOS[n % len(ERRNOS)]
    makers = (
        lambda: BrokenPipeError(e, "x"),
        lambda: ConnectionResetError(e, "x"),
        lambda: RuntimeError("x"),
        lambda: RuntimeError("closed=True: the handler is closed"),
        lambda: ValueError("I/O operation on closed file"),
        lambda: TimeoutError(e, "x"),
        lambda: OSError(e, "x"),
        lambda: asyncio.CancelledError(),
        lambda: httpx.ReadError("x"),
        lambda: httpcore.ReadError("x"),
        lambda: httpx.ConnectTimeout("x"),
        lambda: GeneratorExit(),
        lambda: KeyboardInterrupt(),
        lambda: ConnectionAbortedError(e, "x"),
    )
    return makers[kind % len(makers)]()


@st.composite
def exceptions(draw: st.DrawFn) -> BaseException:
    size = draw(st.integers(1, 9))
    excs = [_make(draw(st.integers(0, 99)), draw(st.integers(0, 99))) for _ in range(size)]
    for exc in excs:  # links anywhere, cycles included
        if draw(st.booleans()):
            exc.__cause__ = draw(st.sampled_from(excs))
        if draw(st.booleans()):
            exc.__context__ = draw(st.sampled_from(excs))
    if draw(st.booleans()):
        leaves = draw(st.lists(st.sampled_from(excs), min_size=1, max_size=4))
        group = BaseExceptionGroup("g", leaves)
        if draw(st.booleans()):
            group.__context__ = excs[0]
        return group
    return excs[0]


def _walk(exc: BaseException, limit: int = 64) -> Iterator[BaseException]:
    # The original generator walk, kept here as the reference.
    seen: set[int] = set()
    queue: deque[BaseException] = deque((exc,))
    while queue and len(seen) < limit:
        e = queue.popleft()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        links = [x for x in (e.__cause__, e.__context__) if x is not None]
        if isinstance(e, BaseExceptionGroup):
            links.extend(e.exceptions[:limit])
        queue.extend(links)


def _matches(rule: Rule, exc: BaseException) -> bool:
    if not rule.accepts_type_uncached(type(exc)):
        return False
    if rule.errnos and getattr(exc, "errno", None) not in rule._errnos:
        return False
    return rule.when is None or bool(rule.when(exc))


def _reference_one(policy: Policy, exc: BaseException, role: str) -> Outcome:
    def out(reason: errclass.Reason, member: BaseException, name: str) -> Outcome:
        folded = R_GONE if policy.fold_deadlines and reason.value == "deadline_exceeded" else reason
        error_type = None if folded.value == "ok" else policy.error_type(type(member))
        return Outcome(folded, error_type, name)

    if isinstance(exc, GeneratorExit):
        return out(policy.generator_exit, exc, "generator_exit")
    for rule in policy.rules:
        if rule.role not in (None, role):
            continue
        for member in _walk(exc) if rule.chain else (exc,):
            if _matches(rule, member) and (reason := rule.decide(member, role)):  # type: ignore[arg-type]
                return out(reason, member, rule.name)
    return out(policy.default, exc, "default")


def _reference(policy: Policy, exc: BaseException, role: str) -> Outcome:
    if not isinstance(exc, BaseExceptionGroup):
        return _reference_one(policy, exc, role)
    worst: Outcome | None = None
    for leaf in errclass._rule.leaves(exc):
        o = _reference_one(policy, leaf, role)
        if worst is None or SEVERITY[o.reason] > SEVERITY[worst.reason]:
            worst = o
            if o.reason.value == "write_failed":
                break
    assert worst is not None
    return worst


POLICIES = (
    Policy(),
    Policy(fold_deadlines=True),
    Policy(before=[errclass.rules.CLOSED_RESOURCE_IS_CLIENT_GONE]),
    Policy(
        rules=[
            Rule(
                errclass.Reason.DEADLINE_EXCEEDED, types=OSError, errnos=errno.ETIMEDOUT, chain=True
            ),
            Rule(errclass.Reason.CLIENT_GONE, names="httpcore.*", chain=True, role="consumer"),
            *errclass.rules.DEFAULT,
        ]
    ),
)


def test_shared_walk_matches_the_generator_walk() -> None:
    a, b, c = ValueError(), OSError(), RuntimeError()
    a.__cause__, a.__context__, b.__context__, c.__context__ = b, c, c, a
    group = BaseExceptionGroup("g", [a, c, KeyboardInterrupt()])
    for exc in (a, group):
        assert errclass._rule.chain(exc) == list(_walk(exc))
        assert errclass._rule.chain(exc, 2) == list(_walk(exc, 2))


# --------------------------------------------------------------------------- plain chains
# The shapes scan() follows without the full walk: each member has one link (cause,
# context, or both the same), ending in None, a cycle, a fork or a group.

LINKS = ("context", "cause", "both")
ENDS = ("none", "cycle", "fork", "group", "suppressed")


def _link(exc: BaseException, nxt: BaseException, how: str) -> None:
    if how in ("cause", "both"):
        exc.__cause__ = nxt
    if how in ("context", "both"):
        exc.__context__ = nxt


def _plain(
    kinds: list[int], errnos: list[int], links: list[str], end: str, fork: tuple[int, int]
) -> BaseException:
    excs = [_make(k, n) for k, n in zip(kinds, errnos, strict=True)]
    for exc, nxt, how in zip(excs, excs[1:], links, strict=False):
        _link(exc, nxt, how)
    last = excs[-1]
    if end == "cycle":
        _link(last, excs[len(excs) // 2], links[0])
    elif end == "fork":
        last.__cause__, last.__context__ = _make(fork[0], 1), _make(fork[1], 3)
    elif end == "group":
        last.__context__ = BaseExceptionGroup("g", [_make(1, 2), excs[0]])
    elif end == "suppressed":  # the walk does not read __suppress_context__
        last.__cause__, last.__context__ = None, _make(1, 0)
        last.__suppress_context__ = True
    return excs[0]


@st.composite
def plain_chains(draw: st.DrawFn, kinds: list[int] | None = None) -> BaseException:
    kinds = kinds or draw(st.lists(st.integers(0, 99), min_size=1, max_size=12))
    errnos = draw(st.lists(st.integers(0, 99), min_size=len(kinds), max_size=len(kinds)))
    links = draw(st.lists(st.sampled_from(LINKS), min_size=len(kinds), max_size=len(kinds)))
    fork = (draw(st.integers(0, 13)), draw(st.integers(0, 13)))
    return _plain(kinds, errnos, links, draw(st.sampled_from(ENDS)), fork)


def _gone_unless_reset(exc: BaseException, role: str) -> errclass.Reason | None:
    if isinstance(exc, ConnectionResetError):
        return None  # does not decide after all: the walk goes on
    return errclass.Reason.CLIENT_GONE if role == "consumer" else errclass.Reason.WRITE_FAILED


USER_POLICIES = (
    # chain rules that look at the instance (errno, message, a reason function)
    Policy(
        before=[
            Rule(errclass.Reason.OK, types=OSError, errnos=errno.EPIPE, chain=True, name="epipe"),
            Rule(
                errclass.Reason.DEADLINE_EXCEEDED,
                types=RuntimeError,
                when=lambda e: "closed" in str(e),
                chain=True,
                name="closed_msg",
            ),
            Rule(_gone_unless_reset, types=OSError, chain=True, name="fn_chain"),
        ]
    ),
    # by-class chain rules, one per role, before a by-class rule that ends the plan
    Policy(
        rules=[
            Rule(errclass.Reason.CLIENT_GONE, names="httpcore.*", chain=True, role="producer"),
            Rule(
                errclass.Reason.DEADLINE_EXCEEDED, types=TimeoutError, chain=True, role="consumer"
            ),
            Rule(errclass.Reason.OK, types=ValueError, name="value_ok"),
            Rule(errclass.Reason.CLIENT_GONE, types=Exception, name="any"),
        ],
        default="client_gone",
    ),
    # no rules at all: every class is its default outcome
    Policy(rules=[], generator_exit="ok"),
)
ALL_POLICIES = POLICIES + USER_POLICIES


# Also the test of any exception graph (exceptions()) under the built-in policies
# (POLICIES is part of ALL_POLICIES).
@settings(max_examples=400, deadline=None)
@given(
    st.one_of(plain_chains(), exceptions()),
    st.sampled_from(ALL_POLICIES),
    st.sampled_from(["producer", "consumer"]),
)
def test_plain_chains_and_user_policies_agree_with_the_reference(
    exc: BaseException, policy: Policy, role: str
) -> None:
    expected = _reference(policy, exc, role)
    assert policy.classify(exc, role) == expected  # type: ignore[arg-type]
    assert policy.classify(exc, role) == expected  # type: ignore[arg-type]  # plan cached


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(st.integers(0, 99), min_size=1, max_size=8))
def test_the_same_classes_with_other_errnos_and_messages(
    data: st.DataObject, kinds: list[int]
) -> None:
    # Plans and tables are per class: a second chain of the same classes but other
    # errnos (and so messages) must still be read instance by instance.
    for policy in ALL_POLICIES:
        first = data.draw(plain_chains(kinds))
        second = data.draw(plain_chains(kinds))
        for exc in (first, second, first):
            for role in ("producer", "consumer"):
                assert policy.classify(exc, role) == _reference(policy, exc, role)


def test_a_policy_built_from_a_used_one_adds_its_rule() -> None:
    base = Policy()
    top = RuntimeError("x")
    top.__context__ = core = httpcore.ReadError("x")
    core.__cause__ = core.__context__ = ConnectionResetError(errno.ECONNRESET, "x")
    assert base.classify(top) == Outcome(
        R_GONE, "ConnectionResetError", "connection_broken_in_chain"
    )
    first = Rule(errclass.Reason.DEADLINE_EXCEEDED, names="httpcore.*", chain=True, name="first")
    for derived in (Policy(before=[first], rules=base.rules), Policy(rules=(first, *base.rules))):
        assert derived.classify(top) == _reference(derived, top, "producer")
        assert derived.classify(top).rule == "first"
    assert base.classify(top).rule == "connection_broken_in_chain"  # unchanged


@settings(max_examples=300, deadline=None)
@given(st.one_of(plain_chains(), exceptions()), st.sets(st.integers(0, 13), max_size=5))
def test_scan_finds_what_the_full_walk_finds_first(exc: BaseException, picked: set[int]) -> None:
    classes = {type(_make(k, 0)) for k in picked}
    table: WalkTable[str] = WalkTable(lambda cls: cls.__name__ if cls in classes else None)
    found = scan(exc, table)
    if found is EXACT:
        return  # not plain: the callers walk in full
    first = next((type(m).__name__ for m in chain(exc) if type(m) in classes), None)
    assert found == first


def _bench_chains() -> tuple[BaseException, BaseException]:
    mixed: BaseException = ConnectionResetError(errno.ECONNRESET, "reset")
    for i in range(5):
        outer = RuntimeError(i) if i % 2 else ValueError(i)
        outer.__context__ = mixed
        mixed = outer
    core = httpcore.ReadError("reset")
    core.__cause__ = core.__context__ = ConnectionResetError(errno.ECONNRESET, "reset")
    top = httpx.ReadError("reset")
    top.__cause__ = top.__context__ = core
    return mixed, top


def test_plain_chains_take_the_scan_not_the_full_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[BaseException] = []

    def counted(exc: BaseException, limit: int = 64) -> list[BaseException]:
        walks.append(exc)
        return chain(exc, limit)

    monkeypatch.setattr(errclass._policy, "chain", counted)
    monkeypatch.setattr(errclass.rules, "walk", lambda e: iter(counted(e)))
    policy = Policy()
    mixed, top = _bench_chains()
    for _ in range(2):  # first sight (tables filled) and cached
        assert policy.classify(mixed) == Outcome(
            R_GONE, "ConnectionResetError", "connection_broken_in_chain"
        )
        assert policy.classify(top).rule == "upstream_client"
        assert policy.classify(top, "consumer").reason is R_GONE
    assert walks == []
    forked = ValueError("x")
    forked.__cause__, forked.__context__ = KeyError(), BrokenPipeError()
    assert policy.classify(forked).reason is R_GONE  # found by the full walk
    assert walks == [forked]


def test_tables_hold_classes_not_exceptions_and_stay_bounded() -> None:
    class Tracked(RuntimeError):
        pass

    policy = Policy()
    exc = Tracked("x")
    exc.__context__ = ValueError("y")
    ref = weakref.ref(exc)
    assert policy.classify(exc).rule == "default"
    del exc
    gc.collect()
    assert ref() is None  # neither plans nor tables keep an instance alive
    for i in range(CACHE_LIMIT + 500):  # more classes than any table keeps
        top = type(f"Dyn{i}", (ValueError,), {})("x")
        top.__context__ = type(f"Deeper{i}", (KeyError,), {})()
        assert policy.classify(top) == Outcome(errclass.Reason.WRITE_FAILED, "_OTHER", "default")
    for table in policy._tables.values():
        assert len(table.values) <= CACHE_LIMIT
        assert all(isinstance(k, type) for k in table.values)
    for caches in (policy._plans, policy._static):
        assert all(len(cache) <= CACHE_LIMIT for cache in caches.values())


@pytest.mark.parametrize("depth", [62, 63, 64, 65])
@pytest.mark.parametrize("shape", ["plain", "cycle", "forked"])
def test_the_walk_limit_is_the_same_on_every_path(depth: int, shape: str) -> None:
    # depth KeyErrors above a BrokenPipeError: found only within CHAIN_LIMIT (64) members
    top: BaseException = BrokenPipeError()
    for _ in range(depth):
        nxt = KeyError()
        nxt.__context__ = top
        top = nxt
    if shape == "cycle":  # the bottom links back up: scan() goes round, walk() stops
        bottom = top
        while bottom.__context__ is not None:
            bottom = bottom.__context__
        bottom.__cause__ = top
    elif shape == "forked":  # a fork at the top: the full walk decides
        top.__cause__ = KeyError()
    expected = _reference(Policy(), top, "producer")
    assert expected.reason is (R_GONE if depth + (shape == "forked") < 64 else WF)
    assert Policy().classify(top) == expected


# -- CancelledError and the deadlines the classifier can see -----------------------------

DEADLINE_POLICIES = (
    *ALL_POLICIES,
    # a rule on the instance before the cancellation rule: the plan does not start
    # with it, so the no-deadline lookup must not be used
    Policy(before=[Rule(errclass.Reason.OK, types=asyncio.CancelledError, when=lambda e: e.args)]),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(plain_chains(), exceptions()),
            st.sampled_from(DEADLINE_POLICIES),
            st.sampled_from(["producer", "consumer"]),
            st.sampled_from(["none", "watched", "expired"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_classification_agrees_with_the_reference_under_every_deadline_state(
    calls: list[tuple[BaseException, Policy, str, str, bool]],
) -> None:
    # Several calls in a row, so that what one state cached is read in another.
    for exc, policy, role, state, with_args in calls:
        if with_args and isinstance(exc, asyncio.CancelledError):
            exc.args = ("by the rule on the instance",)
        if state == "none":
            expected = _reference(policy, exc, role)
            got = policy.classify(exc, role)  # type: ignore[arg-type]
        else:
            with errclass._deadline.watching(
                errclass._deadline.Expiry(lambda s=state: s == "expired")
            ):
                expected = _reference(policy, exc, role)
                got = policy.classify(exc, role)  # type: ignore[arg-type]
        assert got == expected, (state, exc, policy)


def test_a_cancellation_without_deadlines_is_one_lookup_not_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = Policy()
    first = policy.classify(asyncio.CancelledError())  # builds the plan
    assert first.reason is R_GONE
    assert asyncio.CancelledError in policy._unwatched["producer"]

    def not_asked(self: object, exc: BaseException, role: str) -> None:
        raise AssertionError("the reason function was called")

    monkeypatch.setattr(errclass._deadline.OnExpiry, "__call__", not_asked)
    assert policy.classify(asyncio.CancelledError()) == first  # taken: nothing called
    with errclass._deadline.watching(errclass._deadline.Expiry(lambda: True)):
        # a deadline is watched: the rule is asked (and its failure contained)
        assert policy.classify(asyncio.CancelledError()) != first
