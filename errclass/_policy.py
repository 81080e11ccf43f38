"""Policies: an ordered rule table, exception (with its chain and group leaves) -> Outcome."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from typing import TypeVar

from ._deadline import OnExpiry, watched
from ._names import public_name
from ._outcome import OK, R_DEADLINE, R_FAILED, R_GONE, R_OK, ROLES, SEVERITY, Outcome, Reason, Role
from ._rule import CACHE_LIMIT, EXACT, PASS_THROUGH, Exact, Rule, WalkTable, chain, leaves, scan
from .rules import DEFAULT

LEAF_LIMIT = 10_000  # exception-group leaves looked at; past it, assume the worst

# A class's plan: for each rule that may decide, in order, (rule, its WalkTable)
# for a chain rule, else (rule, its Outcome for each Reason); then the Outcome
# when none does.
_Plan = tuple[tuple[tuple[Rule, WalkTable[Outcome] | dict[Reason, Outcome]], ...], Outcome]


class Policy:
    """An ordered, replaceable rule set; the first rule that decides wins.

    ``Policy()`` is the default table (``errclass.rules.DEFAULT``). ``rules=``
    replaces it; ``before=``/``after=`` add your rules around it. An exception
    no rule decides gets ``default`` (``write_failed``). ``fold_deadlines=True``
    reports ``deadline_exceeded`` as ``client_gone`` (the Go original's
    behaviour). ``generator_exit`` is what a producer closed before it finished
    means (``client_gone``; a voluntary ``break`` looks the same).
    """

    __slots__ = (
        "_default",
        "_fold_deadlines",
        "_generator_exit",
        "_known",
        "_outcomes",
        "_packages",
        "_plans",
        "_rules",
        "_static",
        "_tables",
        "_unclassifiable",
        "_unwatched",
    )

    def __init__(
        self,
        rules: Iterable[Rule] | None = None,
        *,
        before: Iterable[Rule] = (),
        after: Iterable[Rule] = (),
        fold_deadlines: bool = False,
        generator_exit: Reason | str = Reason.CLIENT_GONE,
        default: Reason | str = Reason.WRITE_FAILED,
    ) -> None:
        middle = DEFAULT if rules is None else _rule_tuple(rules, "rules")
        self._rules = (*_rule_tuple(before, "before"), *middle, *_rule_tuple(after, "after"))
        # Read-only after this (properties below): plans and outcomes cached from
        # them would go stale if they changed. Build a new Policy instead.
        self._fold_deadlines = _flag(fold_deadlines, "fold_deadlines")
        self._generator_exit = _reason(generator_exit, "generator_exit")
        self._default = _reason(default, "default")
        # Per role, class -> its plan (see _plan()): the Outcome when the class alone
        # decides (the hot path: one lookup), else the steps to follow.
        self._static: dict[str, dict[type, Outcome]] = {r: {} for r in ROLES}
        self._plans: dict[str, dict[type, _Plan]] = {r: {} for r in ROLES}
        # Per role, class -> its Outcome while no deadline is watched, for a class
        # whose plan starts with an OnExpiry rule (CancelledError: the cascade's
        # hot path, otherwise a walk of its plan and a call per classification).
        self._unwatched: dict[str, dict[type, Outcome]] = {r: {} for r in ROLES}
        self._unclassifiable = Outcome(self.default, "_OTHER", "unclassifiable")
        # Per chain rule, member class -> what its walk does there (see scan()).
        self._tables = {
            r: WalkTable(functools.partial(self._in_chain, r)) for r in self._rules if r.chain
        }
        self._known: dict[type, str] = {}
        self._outcomes: dict[tuple[Reason, type, str], Outcome] = {}
        self._packages = frozenset(p for r in self._rules for p in r.packages)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def default(self) -> Reason:
        return self._default

    @property
    def fold_deadlines(self) -> bool:
        return self._fold_deadlines

    @property
    def generator_exit(self) -> Reason:
        return self._generator_exit

    def _lookups(self, role: str) -> tuple[dict[type, Outcome], dict[type, Outcome]]:
        """The two tables ``classify()`` reads first for *role* (the second only while
        no deadline is watched), for a hot path that reads them itself; a miss in
        both goes to ``classify()``."""
        return self._static[role], self._unwatched[role]

    def __repr__(self) -> str:
        return (
            f"Policy({len(self._rules)} rules, fold_deadlines={self.fold_deadlines}, "
            f"generator_exit={self.generator_exit.value!r}, default={self.default.value!r})"
        )

    def classify(self, exc: BaseException | None, role: Role = "producer") -> Outcome:
        """Classify *exc* (``None`` is ``ok``). Never raises for any exception; a
        wrong argument (not an exception, unknown role) is a ``TypeError``/``ValueError``."""
        try:
            hit = self._static[role].get(type(exc))
            if hit is not None:  # the hot path: the class alone decides
                return hit
            hit = self._unwatched[role].get(type(exc))
            if hit is not None and not watched():  # the class decides, no deadline
                return hit
            plan = self._plans[role].get(type(exc))
        except PASS_THROUGH:
            raise
        except BaseException:  # an unknown role, or a class whose metaclass cannot hash
            plan = None
        if plan is None:  # not seen yet (or a group): check the arguments first
            return self._first_sight(exc, role)
        try:  # a plan exists only for an exception class (not a group) and a role
            return self._run(exc, role, plan)  # type: ignore[arg-type]
        except PASS_THROUGH:
            raise
        except BaseException:  # hostile exceptions must not break the caller
            return self._unclassifiable

    def _first_sight(self, exc: BaseException | None, role: Role) -> Outcome:
        if exc is None:
            return OK
        if role not in ROLES:
            raise ValueError(f"role must be 'producer' or 'consumer', got {role!r}")
        if not issubclass(type(exc), BaseException):
            raise TypeError(f"classify() takes an exception or None, got {type(exc).__name__}")
        try:
            # issubclass(type(...)): isinstance() would consult a hostile __class__
            if issubclass(type(exc), BaseExceptionGroup):
                return self._classify_group(exc, role)  # type: ignore[arg-type]
            return self._classify_one(exc, role)
        except PASS_THROUGH:
            raise
        except BaseException:  # hostile exceptions must not break the caller
            return self._unclassifiable

    def _classify_one(self, exc: BaseException, role: Role) -> Outcome:
        cls = type(exc)
        plan = self._static[role].get(cls) or self._plans[role].get(cls) or self._plan(cls, role)
        return plan if isinstance(plan, Outcome) else self._run(exc, role, plan)

    def _run(self, exc: BaseException, role: Role, plan: _Plan) -> Outcome:
        """Follow *plan* (the plan of *exc*'s class): the first step that decides wins."""
        steps, last = plan
        for rule, table in steps:
            if not isinstance(table, WalkTable):  # a rule on the instance; table: its outcomes
                if (rule._plain or rule.matches_instance(exc)) and (
                    reason := rule.decide(exc, role)
                ):
                    return table[reason]
                continue
            try:  # a chain rule: scan() a plain chain, else walk it in full
                found = scan(exc, table)
            except PASS_THROUGH:
                raise
            except BaseException:  # a hostile link: the full walk contains it
                found = EXACT
            if found is EXACT:
                found = self._walk(exc, rule, role)
            if found is not None:
                return found
        return last

    def _walk(self, exc: BaseException, rule: Rule, role: Role) -> Outcome | None:
        """A chain rule's plain reading: the first member it matches and decides."""
        for member in chain(exc):
            if rule.matches(member) and (reason := rule.decide(member, role)):
                return self._outcome(reason, type(member), rule.name)
        return None

    def _plan(self, cls: type[BaseException], role: Role) -> Outcome | _Plan:
        """What classifying a *cls* of *role* takes: the rules that may decide, in
        order, up to the first that decides by class alone (its Outcome, or the
        default's, ends the plan); just that Outcome when no rule comes before it."""
        steps: list[tuple[Rule, WalkTable[Outcome] | dict[Reason, Outcome]]] = []
        last = self._outcome(self.default, cls, "default")
        for rule in self._rules:
            if rule.role not in (None, role) or not (rule.chain or rule.accepts_type(cls)):
                continue
            if rule.chain:
                steps.append((rule, self._tables[rule]))
            elif rule._by_type is None:  # the class alone is known: so is each outcome
                steps.append((rule, {r: self._outcome(r, cls, rule.name) for r in Reason}))
            else:
                last = self._outcome(rule._by_type, cls, rule.name)
                break
        if issubclass(cls, GeneratorExit):  # GeneratorExit wins over every rule
            steps, last = [], self._outcome(self.generator_exit, cls, "generator_exit")
        # Bounded. A race between threads only loses entries (each dict operation is
        # atomic under the GIL), so classification takes no lock.
        if not steps:
            _remember(self._static[role], cls, last)
            return last
        first, table = steps[0]
        if first._plain and isinstance(first._fn, OnExpiry) and isinstance(table, dict):
            _remember(self._unwatched[role], cls, table[first._fn.otherwise])
        return _remember(self._plans[role], cls, (tuple(steps), last))

    def _in_chain(self, rule: Rule, cls: type) -> Outcome | Exact | None:
        """What *rule*'s chain walk does at a member of class *cls* (a WalkTable value)."""
        if not rule.accepts_type(cls):
            return None
        if rule._by_type is None:  # errnos=, when= or a reason function: the full walk
            return EXACT
        return self._outcome(rule._by_type, cls, rule.name)

    def _classify_group(self, group: BaseExceptionGroup[BaseException], role: Role) -> Outcome:
        worst: Outcome | None = None
        for count, leaf in enumerate(leaves(group)):
            if count >= LEAF_LIMIT:
                return Outcome(self._fold(Reason.WRITE_FAILED), "_OTHER", "too_many_leaves")
            outcome = self._classify_one(leaf, role)
            if worst is None or SEVERITY[outcome.reason] > SEVERITY[worst.reason]:
                worst = outcome
                if outcome.reason is R_FAILED:
                    break
        return worst or Outcome(self.default, "_OTHER", "default")

    def _fold(self, reason: Reason) -> Reason:
        if self._fold_deadlines and reason is R_DEADLINE:
            return R_GONE
        return reason

    def _outcome(self, reason: Reason, cls: type, rule: str) -> Outcome:
        # Shared, like the cached type path: no allocation per classification.
        key = (reason, cls, rule)
        outcome = self._outcomes.get(key)
        if outcome is None:
            folded = self._fold(reason)
            error_type = None if folded is R_OK else self.error_type(cls)
            outcome = Outcome(folded, error_type, rule)
            if len(self._outcomes) >= CACHE_LIMIT:
                self._outcomes.clear()
            self._outcomes[key] = outcome
        return outcome

    def error_type(self, cls: type) -> str:
        """A bounded ``error.type`` value for *cls*: its qualified name when it is a
        class of the standard library or of a package a rule refers to, importable
        under that name (so not made at run time); else ``"_OTHER"``."""
        known = self._known.get(cls)
        if known is None:
            known = _bounded_name(cls, self._packages)
            if len(self._known) >= CACHE_LIMIT:
                self._known.clear()
            self._known[cls] = known
        return known


T = TypeVar("T")


def _remember(cache: dict[type, T], cls: type, value: T) -> T:
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[cls] = value
    return value


def _bounded_name(cls: type, packages: frozenset[str]) -> str:
    try:
        # Read once, exact str only: a metaclass property or a str subclass could
        # answer the lookup below with one name and the label with another.
        module, qualname = cls.__module__, cls.__qualname__
        if type(module) is not str or type(qualname) is not str:
            return "_OTHER"
        top = module.partition(".")[0]
        if not (top == "builtins" or top in sys.stdlib_module_names or top in packages):
            return "_OTHER"
        # Only a class reachable by its name: a class made at run time (in a
        # function, or with a made-up __module__) could carry any name.
        found: object = sys.modules.get(module)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        return public_name(module, qualname) if found is cls else "_OTHER"
    except PASS_THROUGH:
        raise
    except BaseException:  # hostile class attributes
        return "_OTHER"


def _reason(value: object, what: str) -> Reason:
    if isinstance(value, Reason):
        return value
    if isinstance(value, str):
        try:
            return Reason(value)
        except ValueError:
            pass
    allowed = ", ".join(repr(r.value) for r in Reason)
    raise ValueError(f"Policy {what}= must be an errclass.Reason ({allowed}), got {value!r}")


def _flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"Policy {what}= must be True or False, got {value!r}")
    return value


def _rule_tuple(rules: Iterable[Rule], what: str) -> tuple[Rule, ...]:
    if isinstance(rules, Rule):
        rules = (rules,)
    if isinstance(rules, str | bytes) or not isinstance(rules, Iterable):
        raise TypeError(f"Policy {what}= takes an iterable of errclass.Rule, got {rules!r}")
    out = tuple(rules)
    for r in out:
        if not isinstance(r, Rule):
            raise TypeError(f"Policy {what}= takes errclass.Rule objects, got {r!r}")
    return out


DEFAULT_POLICY = Policy()


def classify(
    exc: BaseException | None, *, role: Role = "producer", policy: Policy | None = None
) -> Outcome:
    """Classify *exc* into an ``Outcome`` (``None`` is ``ok``). Never raises for any exception."""
    return (policy or DEFAULT_POLICY).classify(exc, role)
