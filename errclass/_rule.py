"""A rule: which exceptions it matches and the reason it gives; chain and group walks."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from ._outcome import ROLES, Reason, Role

ReasonFn = Callable[[BaseException, Role], Reason | None]

CHAIN_LIMIT = 64  # exceptions looked at in one __cause__/__context__ chain
CACHE_LIMIT = 2048  # entries per classification cache, cleared when full
# What classification lets through when its own look at an exception (str, errno,
# attributes, a predicate) raises: only the interpreter's exits, which a signal
# handler can raise at any point. Anything else (a CancelledError, GeneratorExit or
# custom BaseException raised by a hostile __str__ or property) cannot be a real
# cancellation, as classification never awaits: it is contained.
PASS_THROUGH = (KeyboardInterrupt, SystemExit)


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
    # The reason when the class alone decides (no errnos=, when= or reason function).
    _by_type: Reason | None = field(default=None, init=False, repr=False)
    # Whether matches_instance() is always true (no errnos=, no when=).
    _plain: bool = field(default=False, init=False, repr=False)
    # The reason function, if any (isinstance(x, Reason) goes through EnumType: slow).
    _fn: ReasonFn | None = field(default=None, init=False, repr=False)
    # class -> accepts_type(class): type-determined, so memoized (bounded).
    _accepts: dict[type, bool] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        types = _as_tuple(self.types, type, "types", "exception classes")
        names = _as_tuple(self.names, str, "names", "'package.Class' strings")
        errnos = _as_tuple(self.errnos, int, "errnos", "integers")
        setattr_(self, "types", types)
        setattr_(self, "names", names)
        setattr_(self, "errnos", errnos)
        setattr_(self, "reason", _checked_reason(self.reason))
        _check_criteria(types, names, errnos)
        _check_options(self)
        if not (types or names or errnos or self.when):
            raise ValueError("a Rule needs at least one of types=, names=, errnos= or when=")
        setattr_(self, "_keys", frozenset(_name_key(n) for n in names))
        setattr_(self, "_errnos", errnos)
        setattr_(self, "_plain", not errnos and self.when is None)
        if not isinstance(self.reason, Reason):
            setattr_(self, "_fn", self.reason)
        elif self._plain:
            setattr_(self, "_by_type", self.reason)
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

    def accepts_type(self, cls: type[BaseException]) -> bool:
        """Whether *cls* passes ``types=``/``names=`` (memoized per class)."""
        memo = self._accepts
        try:
            hit = memo.get(cls)
        except PASS_THROUGH:
            raise
        except BaseException:  # a class whose metaclass cannot hash: no memo
            return self.accepts_type_uncached(cls)
        if hit is None:
            hit = self.accepts_type_uncached(cls)
            if len(memo) >= CACHE_LIMIT:
                memo.clear()
            memo[cls] = hit
        return hit

    def accepts_type_uncached(self, cls: type[BaseException]) -> bool:
        if not self.filters_by_type:
            return True
        if self.types and issubclass(cls, self.types):
            return True
        return bool(self._keys) and not self._keys.isdisjoint(_class_keys(cls))

    def matches(self, exc: BaseException) -> bool:
        """Whether *exc* itself matches (class, errno and predicate).

        An exception whose attributes (or a predicate on it) raise does not match.
        """
        return self.accepts_type(type(exc)) and self.matches_instance(exc)

    def matches_instance(self, exc: BaseException) -> bool:
        """``matches()`` for an *exc* whose class is known to pass ``accepts_type()``."""
        try:
            if self.errnos and getattr(exc, "errno", None) not in self._errnos:
                return False
            return self.when is None or bool(self.when(exc))
        except PASS_THROUGH:
            raise
        except BaseException:  # hostile exception or broken predicate
            return False

    def decide(self, exc: BaseException, role: Role) -> Reason | None:
        """The reason for *exc*, or ``None`` (also when a reason function raises)."""
        fn = self._fn
        if fn is None:
            return self.reason  # type: ignore[return-value]  # a Reason (see _fn)
        try:
            reason = fn(exc, role)
            # Reason(x) costs an enum lookup (~0.3 µs): skip it for a Reason itself.
            return reason if type(reason) is Reason or reason is None else Reason(reason)
        except PASS_THROUGH:
            raise
        except BaseException:  # hostile exception, broken function, or not a reason
            return None


class Exact(enum.Enum):
    EXACT = "exact"


#: What ``scan()`` answers when only the full walk (``chain()``) can tell.
EXACT: Final = Exact.EXACT

V = TypeVar("V")


class WalkTable(Generic[V]):
    """class -> what ``scan()`` does at a chain member of that class: ``None`` goes
    on to the next member, anything else ends the scan with that value.

    ``values`` is filled on first sight of a class by *value_of* (a group is always
    ``EXACT``) and bounded by ``CACHE_LIMIT``; its keys are classes, never
    instances. A plain dict, not a subclass with ``__missing__``: CPython's
    specialized ``d[key]`` is for exact dicts only. A race between threads can only
    compute a value twice or lose some to a ``clear()``: each dict operation is
    atomic under the GIL, so readers take no lock.
    """

    __slots__ = ("_value_of", "values")

    def __init__(self, value_of: Callable[[type], V | Exact | None]) -> None:
        self.values: dict[type, V | Exact | None] = {}
        self._value_of = value_of

    def fill(self, cls: type) -> V | Exact | None:
        value = EXACT if issubclass(cls, BaseExceptionGroup) else self._value_of(cls)
        if len(self.values) >= CACHE_LIMIT:
            self.values.clear()
        self.values[cls] = value
        return value


_STEPS = range(CHAIN_LIMIT)  # made once: range(n) per call costs ~0.3k instructions


def scan(exc: BaseException, table: WalkTable[V]) -> V | Exact | None:
    """The value of the first member of *exc*'s chain whose class has one in
    *table*, or ``None`` when the chain ends first; ``EXACT`` when it is not plain.

    A plain chain is one where no member is a group and every member has at most
    one link (``__cause__`` and ``__context__`` are the same, or one is ``None``):
    there, ``walk()``'s breadth-first order is just the chain, so this follows it
    with one lookup and two attribute reads per member, allocating nothing per
    member. It needs no seen-set: a member found precedes any repeat (a repeated
    member was passed over the first time), so it is the one ``walk()`` would find
    first; and after ``CHAIN_LIMIT`` steps, a cycle or not, every member ``walk()``
    would yield (at most ``CHAIN_LIMIT``) has been looked at. A hostile link's
    error propagates (the caller falls back to the full walk).
    """
    # Written for the fewest bytecodes per member (each costs ~30 CPU instructions).
    values = table.values
    e = exc
    for _ in _STEPS:
        try:
            value = values[type(e)]  # type(), never e.__class__, which can lie
        except KeyError:
            value = table.fill(type(e))
        if value is not None:
            return value
        cause = e.__cause__
        e = e.__context__  # type: ignore[assignment]  # None: checked below
        if cause is not None and cause is not e:
            if e is not None:
                return EXACT  # two links: breadth first, the full walk's order
            e = cause
        if e is None:
            return None
    return None


def walk(exc: BaseException, limit: int = CHAIN_LIMIT) -> Iterator[BaseException]:
    """*exc*, then its causes, contexts and group leaves, breadth first, each once."""
    return iter(chain(exc, limit))


def chain(exc: BaseException, limit: int = CHAIN_LIMIT) -> list[BaseException]:
    """``walk()`` as a list: one pass, each exception's links read once.

    Duplicates are dropped when queued rather than when taken, which gives the
    same breadth-first order with no queue object or generator frame.
    """
    out = [exc]
    seen = {id(exc)}
    i = 0
    while i < len(out) < limit:
        e = out[i]
        i += 1
        links: list[BaseException | None]
        if issubclass(type(e), BaseExceptionGroup):
            links = list(_links(e, limit))
        else:
            try:
                links = [e.__cause__, e.__context__]
            except PASS_THROUGH:
                raise
            except BaseException:  # a hostile exception ends its chain here
                continue
        for x in links:
            if x is not None and id(x) not in seen:
                seen.add(id(x))
                out.append(x)
                if len(out) >= limit:
                    break
    return out


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
    except PASS_THROUGH:
        raise
    except BaseException:  # a hostile exception ends its chain here
        return []


_KEYS: dict[type, frozenset[str]] = {}


def _class_keys(cls: type) -> frozenset[str]:
    keys = _KEYS.get(cls)
    if keys is None:
        parts: set[str] = set()
        try:
            mro = cls.__mro__
        except PASS_THROUGH:
            raise
        except BaseException:  # a hostile metaclass: match by types= only
            mro = ()
        for base in mro:
            try:
                top = base.__module__.partition(".")[0]
                parts.add(f"{top}.{base.__qualname__.rpartition('.')[2]}")
                parts.add(f"{top}.*")
            except PASS_THROUGH:
                raise
            except BaseException:  # a hostile class: skip its names
                continue
        keys = frozenset(parts)
        if len(_KEYS) >= CACHE_LIMIT:
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


def _checked_reason(reason: object) -> Reason | ReasonFn:
    if isinstance(reason, str) and not isinstance(reason, Reason):
        try:
            return Reason(reason)
        except ValueError:
            raise ValueError(_bad_reason(reason)) from None
    if not isinstance(reason, Reason) and not callable(reason):
        raise TypeError(_bad_reason(reason))
    return reason


def _check_criteria(
    types: tuple[object, ...], names: tuple[object, ...], errnos: tuple[object, ...]
) -> None:
    for t in types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"Rule types must be exception classes, got {t!r}")
    for n in names:
        if not isinstance(n, str) or "." not in n.strip(".") or " " in n:
            raise ValueError(f"Rule names must look like 'package.Class', got {n!r}")
    for e in errnos:
        if not isinstance(e, int) or isinstance(e, bool):
            raise TypeError(f"Rule errnos must be integers, got {e!r}")


def _check_options(rule: Rule) -> None:
    if rule.when is not None and not callable(rule.when):
        raise TypeError(f"Rule when= must be callable, got {rule.when!r}")
    if rule.role is not None and rule.role not in ROLES:
        raise ValueError(f"Rule role must be one of {ROLES} or None, got {rule.role!r}")
    if not isinstance(rule.chain, bool):
        raise TypeError(f"Rule chain= must be True or False, got {rule.chain!r}")
    if not isinstance(rule.name, str):
        raise TypeError(f"Rule name= must be a string, got {rule.name!r}")


def _bad_reason(value: object) -> str:
    allowed = ", ".join(repr(r.value) for r in Reason)
    return f"a reason must be an errclass.Reason ({allowed}) or a function, got {value!r}"
