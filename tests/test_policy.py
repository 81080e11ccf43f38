"""The Policy/Rule API: user rules, ordering, replacing the table, options, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import re

import pytest

import errclass
from errclass import Outcome, Policy, Reason, Rule, classify
from errclass import rules as R

CG, DE, WF, OK = (
    Reason.CLIENT_GONE,
    Reason.DEADLINE_EXCEEDED,
    Reason.WRITE_FAILED,
    Reason.OK,
)


class UpstreamGone(Exception):
    """A user's own exception class."""


class QuotaHit(UpstreamGone):
    pass


class Unrelated(Exception):
    pass


# --------------------------------------------------------------------------- user rules


def test_rule_by_class_matches_subclasses_and_names_the_error_type() -> None:
    p = Policy(before=[Rule("client_gone", types=UpstreamGone)])
    out = classify(QuotaHit(), policy=p)
    assert out == Outcome(CG, "tests.test_policy.QuotaHit", "user:UpstreamGone")
    assert classify(Unrelated(), policy=p).reason is WF
    assert classify(UpstreamGone()).error_type == "_OTHER"  # unknown to the default policy


def test_rule_by_qualified_name_without_importing() -> None:
    by_name = Policy(before=[Rule(Reason.CLIENT_GONE, names="tests.UpstreamGone")])
    assert classify(QuotaHit(), policy=by_name).reason is CG  # a subclass of the named class
    assert classify(Unrelated(), policy=by_name).reason is WF
    # the module path in between does not matter: top-level package + class name
    deep = Policy(before=[Rule(CG, names="tests.test_policy.sub.UpstreamGone")])
    assert classify(UpstreamGone(), policy=deep).reason is CG
    wildcard = Policy(before=[Rule(CG, names="tests.*")])
    assert classify(Unrelated(), policy=wildcard).reason is CG
    assert classify(KeyError(), policy=wildcard).reason is WF
    other_pkg = Policy(before=[Rule(CG, names="myapp.UpstreamGone")])
    assert classify(UpstreamGone(), policy=other_pkg).reason is WF


def test_rule_by_errno_with_and_without_a_class() -> None:
    eio = OSError(errno.EIO, "i/o error")
    assert classify(eio).reason is WF
    p = Policy(before=[Rule(CG, types=OSError, errnos=(errno.EIO, errno.EREMOTEIO))])
    out = classify(eio, policy=p)
    assert (out.reason, out.rule, out.error_type) == (CG, "user:OSError", "OSError")
    assert classify(OSError(errno.ENOSPC, "full"), policy=p).reason is WF
    any_class = Policy(before=[Rule(CG, errnos=errno.EIO)])
    assert classify(eio, policy=any_class).rule == f"user:errno{errno.EIO}"
    odd = KeyError()
    odd.errno = errno.EIO  # type: ignore[attr-defined]
    assert classify(odd, policy=any_class).reason is CG
    assert classify(KeyError(), policy=any_class).reason is WF


def test_rule_by_predicate() -> None:
    p = Policy(before=[Rule(CG, types=RuntimeError, when=lambda e: "peer left" in str(e))])
    assert classify(RuntimeError("the peer left"), policy=p).reason is CG
    assert classify(RuntimeError("bug"), policy=p).reason is WF
    only_when = Policy(before=[Rule(DE, when=lambda e: getattr(e, "late", False), name="late")])
    late = ValueError()
    late.late = True  # type: ignore[attr-defined]
    assert classify(late, policy=only_when) == Outcome(DE, "ValueError", "late")


def test_rule_with_a_reason_function_and_a_role() -> None:
    def by_role(exc: BaseException, role: errclass.Role) -> Reason | None:
        return CG if role == "consumer" else None  # None: let the next rules decide

    p = Policy(before=[Rule(by_role, types=UpstreamGone, name="upstream")])
    assert classify(UpstreamGone(), policy=p).rule == "default"
    assert classify(UpstreamGone(), role="consumer", policy=p).rule == "upstream"
    consumer_only = Policy(before=[Rule(CG, types=KeyError, role="consumer")])
    assert classify(KeyError(), policy=consumer_only).reason is WF
    assert classify(KeyError(), role="consumer", policy=consumer_only).reason is CG
    strings = Policy(before=[Rule(lambda e, r: "deadline_exceeded", types=KeyError)])
    assert classify(KeyError(), policy=strings).reason is DE


def test_chain_rule_looks_through_causes_contexts_and_groups() -> None:
    p = Policy(before=[Rule(CG, types=UpstreamGone, chain=True, name="gone")])
    wrapped = RuntimeError("x")
    wrapped.__cause__ = QuotaHit()
    out = classify(wrapped, policy=p)
    assert (out.reason, out.rule, out.error_type) == (CG, "gone", "tests.test_policy.QuotaHit")
    plain = Policy(before=[Rule(CG, types=UpstreamGone)])
    assert classify(wrapped, policy=plain).reason is WF
    implicit = KeyError()
    implicit.__context__ = ExceptionGroup("g", [UpstreamGone()])
    assert classify(implicit, policy=p).reason is CG


def test_before_wins_over_the_defaults_and_after_does_not() -> None:
    mine = Rule(WF, types=BrokenPipeError, name="mine")
    assert classify(BrokenPipeError(), policy=Policy(before=[mine])).rule == "mine"
    assert classify(BrokenPipeError(), policy=Policy(after=[mine])).rule == "connection_broken"
    fallback = Rule(CG, types=KeyError, name="fallback")
    assert classify(KeyError(), policy=Policy(after=fallback)).rule == "fallback"
    p = Policy(before=[mine], after=[fallback])
    assert p.rules == (mine, *R.DEFAULT, fallback)


def test_first_matching_rule_wins() -> None:
    first = Rule(DE, types=UpstreamGone, name="first")
    second = Rule(CG, types=QuotaHit, name="second")
    assert classify(QuotaHit(), policy=Policy(before=[first, second])).rule == "first"
    assert classify(QuotaHit(), policy=Policy(before=[second, first])).rule == "second"


def test_replacing_the_table() -> None:
    empty = Policy(rules=[])
    assert empty.rules == ()
    for exc in (BrokenPipeError(), TimeoutError(), KeyError()):
        assert classify(exc, policy=empty) == Outcome(WF, type(exc).__name__, "default")
    only_pipes = Policy(rules=[R.CONNECTION_BROKEN], default="deadline_exceeded")
    assert classify(BrokenPipeError(), policy=only_pipes).reason is CG
    assert classify(KeyError(), policy=only_pipes).reason is DE
    composed = Policy(rules=[Rule(CG, types=UpstreamGone), *R.DEFAULT])
    assert classify(UpstreamGone(), policy=composed).reason is CG
    assert classify(TimeoutError(), policy=composed).reason is DE
    assert Policy(rules=iter([R.TIMEOUT])).rules == (R.TIMEOUT,)  # any iterable, read once


def test_fold_deadlines_reports_them_as_client_gone() -> None:
    fold = Policy(fold_deadlines=True)
    assert classify(TimeoutError(), policy=fold).reason is CG
    assert classify(TimeoutError(), policy=fold).reason is CG  # the cached path too
    assert classify(TimeoutError()).reason is DE
    group = ExceptionGroup("g", [TimeoutError(), ConnectionResetError()])
    assert classify(group, policy=fold).reason is CG
    assert classify(KeyError(), policy=fold).reason is WF
    by_fn = Policy(fold_deadlines=True, before=[Rule(lambda e, r: DE, types=KeyError)])
    assert classify(KeyError(), policy=by_fn).reason is CG


def test_generator_exit_choice() -> None:
    exc = GeneratorExit()
    assert classify(exc) == Outcome(CG, "GeneratorExit", "generator_exit")
    assert classify(exc, policy=Policy(generator_exit="write_failed")).reason is WF
    assert classify(exc, policy=Policy(generator_exit=OK)) == Outcome(OK, None, "generator_exit")
    # a user rule on GeneratorExit does not override the explicit option
    assert classify(exc, policy=Policy(before=[Rule(DE, types=GeneratorExit)])).reason is CG


def test_default_reason_and_policy_attributes() -> None:
    p = Policy(default="client_gone")
    assert classify(KeyError(), policy=p) == Outcome(CG, "KeyError", "default")
    assert (p.default, p.fold_deadlines, p.generator_exit) == (CG, False, CG)
    assert re.fullmatch(r"Policy\(\d+ rules, .*default='client_gone'\)", repr(p))
    assert Policy().rules == R.DEFAULT


def test_track_uses_the_policy() -> None:
    events: list[errclass.Event] = []
    p = Policy(before=[Rule(CG, types=UpstreamGone)])

    @errclass.track(events.append, policy=p)
    def producer() -> None:
        raise QuotaHit

    with pytest.raises(QuotaHit):
        producer()
    assert [e.reason for e in events] == [CG]


def test_rules_are_immutable_and_normalised() -> None:
    rule = Rule("client_gone", types=[KeyError, ValueError], names=["a.B"], errnos=[1, 2])
    assert rule.reason is CG
    assert rule.types == (KeyError, ValueError)
    assert rule.names == ("a.B",)
    assert rule.errnos == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.reason = WF  # type: ignore[misc]


# --------------------------------------------------------------------------- the cached path


def test_cached_type_path_returns_the_same_outcome_object() -> None:
    p = Policy()
    first = classify(BrokenPipeError(), policy=p)
    again = classify(BrokenPipeError("another instance"), policy=p)
    assert again is first  # no allocation per call on the cached path
    assert classify(KeyError(), policy=p) is classify(KeyError(1), policy=p)  # default rule
    cancelled = classify(asyncio.CancelledError(), policy=p)  # a rule function
    assert classify(asyncio.CancelledError(), policy=p) is cancelled
    # roles are cached apart
    by_role = Policy(before=[Rule(DE, types=BrokenPipeError, role="consumer")])
    assert classify(BrokenPipeError(), policy=by_role) == first
    consumer = classify(BrokenPipeError(), role="consumer", policy=by_role)
    assert consumer.reason is DE
    assert classify(BrokenPipeError(), role="consumer", policy=by_role) is consumer
    assert classify(BrokenPipeError(), policy=by_role).reason is CG
    # rules that look at the instance are re-evaluated every time
    assert classify(OSError(errno.ENOTCONN, "x"), policy=p).reason is CG
    assert classify(OSError(errno.ENOSPC, "x"), policy=p).reason is WF


def test_an_ok_rule_gives_no_error_type_on_every_path() -> None:
    # Outcome's contract: error_type is None for ok, whether the class alone
    # decides (the cached path) or a chain or instance rule does.
    fine = Rule(OK, types=KeyError, name="fine")
    in_chain = Rule(OK, types=KeyError, chain=True, name="fine")
    by_errno = Rule(OK, types=OSError, errnos=errno.EIO, name="fine")
    top = ValueError()
    top.__context__ = KeyError()
    for policy, exc, rule in [
        (Policy(rules=[fine]), KeyError(), "fine"),
        (Policy(rules=[in_chain]), top, "fine"),
        (Policy(rules=[by_errno]), OSError(errno.EIO, "x"), "fine"),
        (Policy(rules=[], default="ok"), KeyError(), "default"),
    ]:
        for _ in range(2):  # first sight, then cached
            assert classify(exc, policy=policy) == Outcome(OK, None, rule)


def test_caches_stay_bounded() -> None:
    p = Policy()
    for i in range(5000):
        cls = type(f"Dynamic{i}", (ValueError,), {})
        assert classify(cls(), policy=p) == Outcome(WF, "_OTHER", "default")
    assert all(len(c) <= 2048 for caches in (p._plans, p._static) for c in caches.values())
    assert len(p._known) <= 2048
    assert len(p._outcomes) <= 2048


# --------------------------------------------------------------------------- invalid input


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Rule("gone", types=KeyError), ValueError, "a reason must be an errclass.Reason"),
        (lambda: Rule(42, types=KeyError), TypeError, "a reason must be an errclass.Reason"),
        (lambda: Rule(CG), ValueError, "needs at least one of types=, names=, errnos= or when="),
        (lambda: Rule(CG, types=int), TypeError, "types must be exception classes, got <class"),
        (lambda: Rule(CG, types=KeyError()), TypeError, "Rule types= takes exception classes"),
        (lambda: Rule(CG, types="KeyError"), TypeError, "Rule types= takes exception classes"),
        (lambda: Rule(CG, names="KeyError"), ValueError, "names must look like 'package.Class'"),
        (lambda: Rule(CG, names="a. b"), ValueError, "names must look like 'package.Class'"),
        (lambda: Rule(CG, names=5), TypeError, "Rule names= takes 'package.Class' strings"),
        (lambda: Rule(CG, names=[KeyError]), ValueError, "names must look like"),
        (lambda: Rule(CG, errnos="32"), TypeError, "Rule errnos= takes integers"),
        (lambda: Rule(CG, errnos=[True]), TypeError, "errnos must be integers, got True"),
        (lambda: Rule(CG, errnos=1.5), TypeError, "Rule errnos= takes integers"),
        (lambda: Rule(CG, when=5), TypeError, "when= must be callable"),
        (lambda: Rule(CG, types=KeyError, role="server"), ValueError, "role must be one of"),
        (lambda: Rule(CG, types=KeyError, chain=1), TypeError, "chain= must be True or False"),
        (lambda: Rule(CG, types=KeyError, name=5), TypeError, "name= must be a string"),
        (lambda: Policy(rules=5), TypeError, "rules= takes an iterable of errclass.Rule"),
        (lambda: Policy(rules="abc"), TypeError, "rules= takes an iterable of errclass.Rule"),
        (lambda: Policy(rules=[KeyError]), TypeError, "rules= takes errclass.Rule objects"),
        (lambda: Policy(before=[None]), TypeError, "before= takes errclass.Rule objects"),
        (lambda: Policy(after=[R.TIMEOUT, "x"]), TypeError, "after= takes errclass.Rule"),
        (lambda: Policy(fold_deadlines="yes"), TypeError, "fold_deadlines= must be True or"),
        (
            lambda: Policy(generator_exit="bye"),
            ValueError,
            "generator_exit= must be an errclass.Reason",
        ),
        (
            lambda: Policy(generator_exit=None),
            ValueError,
            "generator_exit= must be an errclass.Reason",
        ),
        (lambda: Policy(default="oops"), ValueError, "default= must be an errclass.Reason"),
        (lambda: classify(KeyError(), role="server"), ValueError, "role must be 'producer' or"),
        (lambda: classify("boom"), TypeError, "classify() takes an exception or None, got str"),
        (lambda: classify(KeyError), TypeError, "takes an exception or None, got type"),
    ],
)
def test_invalid_rules_and_policies_fail_at_construction(
    make: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make()  # type: ignore[operator]


def test_a_broken_user_rule_does_not_break_classification() -> None:
    def boom(exc: BaseException, role: errclass.Role = "producer") -> bool:
        raise RuntimeError("bug in the user's rule")

    p = Policy(
        before=[
            Rule(CG, types=KeyError, when=boom),
            Rule(boom, types=KeyError),  # type: ignore[arg-type]
            Rule(lambda e, r: 42, types=KeyError),  # type: ignore[arg-type,return-value]
        ]
    )
    assert classify(KeyError(), policy=p) == Outcome(WF, "KeyError", "default")
    assert classify(BrokenPipeError(), policy=p).reason is CG


@pytest.mark.parametrize(
    ("name", "value"),
    [("default", "client_gone"), ("fold_deadlines", True), ("generator_exit", "write_failed")],
)
def test_a_policys_settings_are_read_only_so_cached_plans_cannot_go_stale(
    name: str, value: object
) -> None:
    p = Policy()
    before = (classify(KeyError(), policy=p), classify(TimeoutError(), policy=p))
    with pytest.raises(AttributeError):
        setattr(p, name, value)
    assert (classify(KeyError(), policy=p), classify(TimeoutError(), policy=p)) == before
    assert getattr(Policy(**{name: value}), name) == value  # the way to change one
