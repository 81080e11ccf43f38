"""Rules and policies: exception (with its chain and group leaves) -> Outcome."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._outcome import R_DEADLINE, R_FAILED, R_GONE, R_OK, ROLES, SEVERITY, Outcome, Reason, Role

ReasonFn = Callable[[BaseException, Role], Reason | None]

CHAIN_LIMIT = 64  # exceptions looked at in one __cause__/__context__ chain
LEAF_LIMIT = 10_000  # exception-group leaves looked at; past it, assume the worst
_CACHE_LIMIT = 2048


@dataclass(frozen=True, eq=False)
class Rule:
    """One row of a policy: which exceptions it matches and the reason it gives.

    An exception matches when every given criterion holds: it is an instance of
    one of ``types``, or its class (or a base) has one of ``names`` (``"pkg.Class"``,
    matched by top-level package and class name without importing the package;
    ``"pkg.*"`` matches any class of that package); its ``errno`` is in
    ``errnos``; ``when(exc)`` is true. ``role`` limits the rule to one role.
    With ``chain=True`` the rule also looks through ``__cause__``/``__context__``
    and group leaves, and the first exception there that matches decides.
    ``reason`` is a ``Reason`` or a function ``(exc, role) -> Reason | None``
    (``None``: this rule does not decide after all; so does a function that
    raises or returns something that is not a reason, as classification never raises).
    """

    reason: Reason | ReasonFn
    types: tuple[type[BaseException], ...] | type[BaseException] = ()
    names: tuple[str, ...] | str = ()
    errnos: tuple[int, ...] | int = ()
    when: Callable[[BaseException], bool] | None = None
    role: Role | None = None
    chain: bool = False
    name: str = ""
    _keys: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    _errnos: tuple[int, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        types = _as_tuple(self.types, type, "types", "exception classes")
        names = _as_tuple(self.names, str, "names", "'package.Class' strings")
        errnos = _as_tuple(self.errnos, int, "errnos", "integers")
        setattr_(self, "types", types)
        setattr_(self, "names", names)
        setattr_(self, "errnos", errnos)
        if isinstance(self.reason, str) and not isinstance(self.reason, Reason):
            try:
                setattr_(self, "reason", Reason(self.reason))
            except ValueError:
                raise ValueError(_bad_reason(self.reason)) from None
        elif not isinstance(self.reason, Reason) and not callable(self.reason):
            raise TypeError(_bad_reason(self.reason))
        for t in types:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise TypeError(f"Rule types must be exception classes, got {t!r}")
        for n in names:
            if not isinstance(n, str) or "." not in n.strip(".") or " " in n:
                raise ValueError(f"Rule names must look like 'package.Class', got {n!r}")
        for e in errnos:
            if not isinstance(e, int) or isinstance(e, bool):
                raise TypeError(f"Rule errnos must be integers, got {e!r}")
        if self.when is not None and not callable(self.when):
            raise TypeError(f"Rule when= must be callable, got {self.when!r}")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"Rule role must be one of {ROLES} or None, got {self.role!r}")
        if not isinstance(self.chain, bool):
            raise TypeError(f"Rule chain= must be True or False, got {self.chain!r}")
        if not isinstance(self.name, str):
            raise TypeError(f"Rule name= must be a string, got {self.name!r}")
        if not (types or names or errnos or self.when):
            raise ValueError("a Rule needs at least one of types=, names=, errnos= or when=")
        setattr_(self, "_keys", frozenset(_name_key(n) for n in names))
        setattr_(self, "_errnos", errnos)
        if not self.name:
            setattr_(self, "name", _default_name(types, names, errnos))

    @property
    def packages(self) -> frozenset[str]:
        """Top-level packages this rule refers to (they keep their ``error.type``)."""
        tops = {k.partition(".")[0] for k in self._keys}
        tops.update(t.__module__.partition(".")[0] for t in self.types)  # type: ignore[union-attr]
        return frozenset(tops)

    @property
    def filters_by_type(self) -> bool:
        return bool(self.types or self.names)

    @property
    def is_static(self) -> bool:
        """Whether the decision depends on the exception's class alone."""
        return (
            isinstance(self.reason, Reason)
            and not self.errnos
            and self.when is None
            and not self.chain
        )

    def accepts_type(self, cls: type[BaseException]) -> bool:
        if not self.filters_by_type:
            return True
        if self.types and issubclass(cls, self.types):
            return True
        return bool(self._keys) and not self._keys.isdisjoint(_class_keys(cls))

    def matches(self, exc: BaseException) -> bool:
        """Whether *exc* itself matches (class, errno and predicate).

        An exception whose attributes (or a predicate on it) raise does not match.
        """
        if not self.accepts_type(type(exc)):
            return False
        try:
            if self.errnos and getattr(exc, "errno", None) not in self._errnos:
                return False
            return self.when is None or bool(self.when(exc))
        except Exception:  # hostile exception or broken predicate
            return False

    def decide(self, exc: BaseException, role: Role) -> Reason | None:
        """The reason for *exc*, or ``None`` (also when a reason function raises)."""
        if isinstance(self.reason, Reason):
            return self.reason
        try:
            reason = self.reason(exc, role)
            return None if reason is None else Reason(reason)
        except Exception:  # hostile exception, broken function, or not a reason
            return None


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
        "_cache",
        "_known",
        "_outcomes",
        "_packages",
        "_rules",
        "_static",
        "default",
        "fold_deadlines",
        "generator_exit",
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
        from .rules import DEFAULT

        middle = DEFAULT if rules is None else _rule_tuple(rules, "rules")
        self._rules = (*_rule_tuple(before, "before"), *middle, *_rule_tuple(after, "after"))
        self.fold_deadlines = _flag(fold_deadlines, "fold_deadlines")
        self.generator_exit = _reason(generator_exit, "generator_exit")
        self.default = _reason(default, "default")
        self._cache: dict[tuple[type[BaseException], Role], Outcome | tuple[Rule, ...]] = {}
        # Per role, classes whose outcome depends on the class alone: the hot path.
        self._static: dict[str, dict[type, Outcome]] = {r: {} for r in ROLES}
        self._known: dict[type[BaseException], str] = {}
        self._outcomes: dict[tuple[Reason, type[BaseException], str], Outcome] = {}
        self._packages = frozenset(p for r in self._rules for p in r.packages)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

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
        except Exception:  # an unknown role, or a class whose metaclass cannot hash
            hit = None
        if hit is not None:
            return hit
        if exc is None:
            from ._outcome import OK

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
        except Exception:  # hostile exceptions must not break the caller
            return Outcome(self.default, "_OTHER", "unclassifiable")

    def _classify_one(self, exc: BaseException, role: Role) -> Outcome:
        cls = type(exc)
        entry = self._cache.get((cls, role))
        if entry is None:
            entry = self._candidates(cls, role)
        if isinstance(entry, Outcome):
            return entry
        if issubclass(cls, GeneratorExit):
            return self._outcome(self.generator_exit, exc, "generator_exit")
        for rule in entry:
            if rule.chain:
                for member in walk(exc):
                    if rule.matches(member) and (reason := rule.decide(member, role)):
                        return self._outcome(reason, member, rule.name)
            elif ((not rule.errnos and rule.when is None) or rule.matches(exc)) and (
                reason := rule.decide(exc, role)
            ):
                return self._outcome(reason, exc, rule.name)
        return self._outcome(self.default, exc, "default")

    def _candidates(self, cls: type[BaseException], role: Role) -> Outcome | tuple[Rule, ...]:
        rules = tuple(
            r
            for r in self._rules
            if (r.role is None or r.role == role) and (r.chain or r.accepts_type(cls))
        )
        entry: Outcome | tuple[Rule, ...] = rules
        if not issubclass(cls, GeneratorExit) and rules and rules[0].is_static:
            reason = rules[0].reason
            assert isinstance(reason, Reason)
            entry = Outcome(self._fold(reason), self.error_type(cls), rules[0].name)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
            for static in self._static.values():
                static.clear()
        self._cache[(cls, role)] = entry
        if isinstance(entry, Outcome):
            self._static[role][cls] = entry
        return entry

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
        if self.fold_deadlines and reason is R_DEADLINE:
            return R_GONE
        return reason

    def _outcome(self, reason: Reason, exc: BaseException, rule: str) -> Outcome:
        # Shared, like the cached type path: no allocation per classification.
        key = (reason, type(exc), rule)
        outcome = self._outcomes.get(key)
        if outcome is None:
            folded = self._fold(reason)
            error_type = None if folded is R_OK else self.error_type(type(exc))
            outcome = Outcome(folded, error_type, rule)
            if len(self._outcomes) >= _CACHE_LIMIT:
                self._outcomes.clear()
            self._outcomes[key] = outcome
        return outcome

    def error_type(self, cls: type[BaseException]) -> str:
        """A bounded ``error.type`` value for *cls*: its qualified name when it is a
        class of the standard library or of a package a rule refers to, importable
        under that name (so not made at run time); else ``"_OTHER"``."""
        known = self._known.get(cls)
        if known is None:
            known = _bounded_name(cls, self._packages)
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            self._known[cls] = known
        return known


def qualified_name(cls: type) -> str:
    """``module.Class`` without private module parts; builtins by bare name."""
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    public = ".".join(p for p in module.split(".") if not p.startswith("_")) or module
    return f"{public}.{cls.__qualname__}"


def _bounded_name(cls: type, packages: frozenset[str]) -> str:
    try:
        module, qualname = cls.__module__, cls.__qualname__
        top = module.partition(".")[0]
        if not (top == "builtins" or top in sys.stdlib_module_names or top in packages):
            return "_OTHER"
        # Only a class reachable by its name: a class made at run time (in a
        # function, or with a made-up __module__) could carry any name.
        found: object = sys.modules.get(module)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        return qualified_name(cls) if found is cls else "_OTHER"
    except Exception:  # hostile class attributes
        return "_OTHER"


def walk(exc: BaseException, limit: int = CHAIN_LIMIT) -> Iterator[BaseException]:
    """*exc*, then its causes, contexts and group leaves, breadth first, each once."""
    seen: set[int] = set()
    queue: deque[BaseException] = deque((exc,))
    while queue and len(seen) < limit:
        e = queue.popleft()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        queue.extend(_links(e, limit))


def leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    """The non-group leaves of *group*, depth first, each group visited once."""
    seen: set[int] = set()
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if issubclass(type(e), BaseExceptionGroup):
            assert isinstance(e, BaseExceptionGroup)
            if id(e) not in seen:
                seen.add(id(e))
                stack.extend(reversed(e.exceptions))
        else:
            yield e


def _links(e: BaseException, limit: int) -> list[BaseException]:
    try:
        out = [x for x in (e.__cause__, e.__context__) if x is not None]
        if issubclass(type(e), BaseExceptionGroup):
            assert isinstance(e, BaseExceptionGroup)
            out.extend(e.exceptions[:limit])
        return out
    except Exception:  # a hostile exception ends its chain here
        return []


_KEYS: dict[type, frozenset[str]] = {}


def _class_keys(cls: type) -> frozenset[str]:
    keys = _KEYS.get(cls)
    if keys is None:
        parts: set[str] = set()
        try:
            mro = cls.__mro__
        except Exception:  # a hostile metaclass: match by types= only
            mro = ()
        for base in mro:
            try:
                top = base.__module__.partition(".")[0]
                parts.add(f"{top}.{base.__qualname__.rpartition('.')[2]}")
                parts.add(f"{top}.*")
            except Exception:  # a hostile class: skip its names
                continue
        keys = frozenset(parts)
        if len(_KEYS) >= _CACHE_LIMIT:
            _KEYS.clear()
        _KEYS[cls] = keys
    return keys


def _as_tuple(value: object, kind: type, what: str, expected: str) -> tuple[Any, ...]:
    if isinstance(value, kind) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"Rule {what}= takes {expected} (one or an iterable), got {value!r}")
    return tuple(value)


def _name_key(name: str) -> str:
    parts = name.strip(".").split(".")
    return f"{parts[0]}.{parts[-1]}"


def _default_name(types: tuple[type, ...], names: tuple[str, ...], errnos: tuple[int, ...]) -> str:
    first = [t.__name__ for t in types] + list(names) + [f"errno{e}" for e in errnos]
    return "user:" + (first[0] if first else "predicate")


def _bad_reason(value: object) -> str:
    allowed = ", ".join(repr(r.value) for r in Reason)
    return f"a reason must be an errclass.Reason ({allowed}) or a function, got {value!r}"


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
