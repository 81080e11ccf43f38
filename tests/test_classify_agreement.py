"""The fast classification paths (one shared walk, memoized type checks, cached
outcomes) agree with a straightforward rule-by-rule reading of the table."""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Iterator

import httpcore
import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

import errclass
from errclass import Outcome, Policy, Rule
from errclass._outcome import R_GONE, SEVERITY

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
        return Outcome(folded, policy.error_type(type(member)), name)

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


@settings(max_examples=400, deadline=None)
@given(exceptions(), st.sampled_from(POLICIES), st.sampled_from(["producer", "consumer"]))
def test_fast_classification_agrees_with_the_reference(
    exc: BaseException, policy: Policy, role: str
) -> None:
    expected = _reference(policy, exc, role)
    assert policy.classify(exc, role) == expected  # type: ignore[arg-type]
    assert policy.classify(exc, role) == expected  # type: ignore[arg-type]  # now cached


def test_shared_walk_matches_the_generator_walk() -> None:
    a, b, c = ValueError(), OSError(), RuntimeError()
    a.__cause__, a.__context__, b.__context__, c.__context__ = b, c, c, a
    group = BaseExceptionGroup("g", [a, c, KeyboardInterrupt()])
    for exc in (a, group):
        assert errclass._rule.chain(exc) == list(_walk(exc))
        assert errclass._rule.chain(exc, 2) == list(_walk(exc, 2))
