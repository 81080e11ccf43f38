"""What a selector should become: the matcher rules of both modes, on parsed matchers.

A matcher on the reason label is a predicate over label values. The split moves the
series that had the old value (``write_failed``) to the old value or one of the split
values (``client_gone``...). Preserve mode rewrites the predicate P into P' with
P'(v) = P(v) for any other v and P'(s) = P(old) for a split value s, so a selector
matches exactly the series it matched before. Split mode rewrites it into
P'(v) = P(v) and v not split, so counts mean real faults only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

Matcher = tuple[str, str, str]  # (label, op, value)
# The matchers on the reason label with their indexes in the selector: (index, op, value).
Mine = tuple[tuple[int, str, str], ...]

MODES = ("preserve", "split")
# The series of a histogram or summary, beside its name.
SERIES = ("_sum", "_count", "_bucket")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VARIABLE = re.compile(r"\$[A-Za-z_{]|\[\[")
_LITERAL = re.compile(r"[A-Za-z0-9_\-]+")


class Unsure(Exception):
    """A matcher whose meaning cannot be decided (a variable, an unknown regex)."""


@dataclass(frozen=True)
class Selection:
    """Which selectors to migrate, and how.

    *metrics*: exact metric names, or regular expressions (anything that is not a valid
    metric name is a regex, matched against the whole name). A name ``x`` also selects
    ``x_sum``, ``x_count`` and ``x_bucket``: the series of a histogram or summary ``x``.
    """

    metrics: tuple[str, ...]
    label: str = "reason"
    old: str = "write_failed"
    split: tuple[str, ...] = ("client_gone",)
    mode: str = "preserve"
    names: frozenset[str] = field(init=False, repr=False, compare=False)
    patterns: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    # What mentions() looks for: strings one of which is in any text that can select a
    # configured metric; None when a pattern has no such string (every text may).
    _needles: Callable[[str], re.Match[str] | None] | None = field(
        init=False, repr=False, compare=False, hash=False
    )
    # What was decided for each set of reason matchers (dashboards repeat the same few):
    # by counts_old, explicit_split and decide, in this module.
    _target_memo: dict[str, bool] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _old_memo: dict[Mine, bool] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _explicit_memo: dict[Mine, bool] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _plan_memo: dict[tuple[Mine, bool], Decision] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("give at least one metric (--metric NAME)")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not _LABEL.fullmatch(self.label):
            raise ValueError(f"{self.label!r} is not a valid label name")
        if not self.split:
            raise ValueError("give at least one split value (--split client_gone)")
        if self.old in self.split:
            raise ValueError(f"{self.old!r} cannot be both the old value and a split value")
        given = frozenset(m for m in self.metrics if _NAME.fullmatch(m))
        # a name also selects the series of a histogram or summary of that name
        names = given | {n + suffix for n in given for suffix in SERIES}
        patterns = []
        for m in self.metrics:
            if m not in given:
                try:
                    patterns.append(re.compile(m))
                except re.error as e:
                    raise ValueError(f"--metric {m!r} is neither a name nor a regex: {e}") from e
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "patterns", tuple(patterns))
        literals = [_required_literal(p.pattern) for p in patterns]
        needles = None
        if "" not in literals:  # a regex search finds the first of them fastest
            needles = re.compile("|".join(map(re.escape, sorted({*given, *literals})))).search
        object.__setattr__(self, "_needles", needles)

    def targets(self, name: str | None) -> bool:
        if name is None:
            return False
        if name in self.names:
            return True
        if not self.patterns:
            return False
        memo = self._target_memo  # a corpus has few names, each met many times
        out = memo.get(name)
        if out is None:
            out = _remember(memo, name, any(p.fullmatch(name) for p in self.patterns))
        return out

    def mentions(self, text: str) -> bool:
        """False only if *text* surely has no selector on a configured metric: no
        ``__name__`` matcher, no quoted name with an escape in it (a metric name can be
        quoted in the braces, ``{"ce\\x70h_osd_up"}``), and none of the needles (each
        name selected contains a name given; each name a pattern matches starts with its
        required literal)."""
        needles = self._needles
        if needles is None or "__name__" in text:
            return True
        if "\\" in text and _ESCAPED_NAME.search(text):
            return True
        return needles(text) is not None

    def may_match(self, name_regex: str) -> bool:
        """Could a ``__name__=~`` regex select a configured metric? (True if unsure.)"""
        if self.patterns:
            return True
        try:
            rx = re.compile(name_regex)
        except re.error:
            return True
        return any(rx.fullmatch(n) for n in self.names)


_PLAIN = re.compile(r"[A-Za-z0-9_:]*")
# A quoted string with an escape, first in braces or after a comma (comments between):
# where a quoted metric or label name may stand. Found anywhere it could be, and more.
_ESCAPED_NAME = re.compile(r"""[{,](?:\s|\#[^\n]*)*(?:"[^"\n]*\\|'[^'\n]*\\)""")


def _required_literal(pattern: str) -> str:
    """A string every name that *pattern* fully matches starts with, "" if none is
    known. Only a pattern without ``|`` is read: then its leading name characters (none
    of which is special in a regex) are literals every match starts with, but for the
    last one if a quantifier follows it. The literal also ends before any ``1``, ``5``
    or ``m``: a name read from masked text may run into a masked template variable
    ("1", "5", "5m"), and only what is before those characters is surely in the raw
    text as written."""
    if "|" in pattern:
        return ""
    lead = _PLAIN.match(pattern)
    literal = lead.group() if lead else ""
    if pattern[len(literal) : len(literal) + 1] in ("*", "+", "?", "{"):
        literal = literal[:-1]
    cut = min((i for i, c in enumerate(literal) if c in "15m"), default=len(literal))
    return literal[:cut]


def family(name: str | None) -> str | None:
    """The histogram or summary a ``_sum``/``_count``/``_bucket`` series belongs to."""
    for suffix in SERIES:
        if name and name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def predicate(op: str, value: str) -> Callable[[str], bool]:
    """The matcher as a function of a label value (Prometheus anchors regexes)."""
    if _VARIABLE.search(value):
        raise Unsure(f"the value {value!r} depends on a dashboard variable")
    if op == "=":
        return lambda v: v == value
    if op == "!=":
        return lambda v: v != value
    try:
        rx = re.compile(value)
    except re.error as e:
        raise Unsure(f"cannot evaluate the regex {value!r}: {e}") from e
    if op == "=~":
        return lambda v: rx.fullmatch(v) is not None
    return lambda v: rx.fullmatch(v) is None


def alternation(values: tuple[str, ...] | list[str]) -> str:
    return "|".join(re.escape(v) for v in values)


@dataclass(frozen=True)
class Plan:
    """What to do with one selector: replace matchers (by index) and/or add one."""

    replace: tuple[tuple[int, str, str], ...] = ()
    add: Matcher | None = None

    def apply(self, matchers: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
        out = list(matchers)
        for i, op, value in self.replace:
            out[i] = (out[i][0], op, value)
        if self.add is not None:
            out.append(self.add)
        return tuple(out)


class Manual(Exception):
    """The selector is affected but no safe rewrite exists; a human must decide."""


@dataclass(frozen=True, slots=True)
class ByHand:
    """The decision that no safe rewrite exists: *why* a human must decide."""

    why: str


# What to do with a selector: a Plan, nothing (None), or leave it to a human.
Decision = Plan | ByHand | None

_K = TypeVar("_K")
_V = TypeVar("_V")
_MEMO_SIZE = 4096  # per selection and kind of decision; a bound, never reached in practice


def counts_old(mine: Mine, sel: Selection) -> bool:
    """Did this selector count the old value before the split (so its volume changes)?
    Memoized per selection, as are explicit_split and decide."""
    memo = sel._old_memo
    out = memo.get(mine)
    if out is None:
        out = _remember(memo, mine, _counts_old(mine, sel))
    return out


def explicit_split(mine: Mine, sel: Selection) -> bool:
    """Does a positive matcher pick a split value on purpose (``reason="client_gone"``)?"""
    memo = sel._explicit_memo
    out = memo.get(mine)
    if out is None:
        out = _remember(memo, mine, _explicit_split(mine, sel))
    return out


def decide(mine: Mine, sel: Selection, in_ratio: bool = False) -> Decision:
    """The plan for a selector with these reason matchers in *sel*'s mode (*in_ratio*:
    it is part of a ratio, which changes what split mode does)."""
    memo = sel._plan_memo
    key = (mine, in_ratio)
    try:
        return memo[key]
    except KeyError:
        pass
    out: Decision
    try:
        if sel.mode == "preserve":
            out = plan_preserve(mine, sel)
        else:
            out = plan_split(mine, sel, in_ratio)
    except Manual as e:
        out = ByHand(str(e))
    return _remember(memo, key, out)


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> _V:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


def _counts_old(mine: Mine, sel: Selection) -> bool:
    try:
        return all(predicate(op, v)(sel.old) for _, op, v in mine)
    except Unsure:
        return False


def _explicit_split(mine: Mine, sel: Selection) -> bool:
    for _, op, v in mine:
        if op not in ("=", "=~"):
            continue
        try:
            p = predicate(op, v)
        except Unsure:
            continue
        if not p(sel.old) and any(p(s) for s in sel.split):
            return True
    return False


def plan_preserve(mine: Mine, sel: Selection) -> Plan | None:
    """Keep matching what matched before: each reason matcher gets P'(s) = P(old)."""
    replace = []
    for i, op, v in mine:
        try:
            p = predicate(op, v)
        except Unsure as e:
            raise Manual(str(e)) from e
        want = p(sel.old)
        wrong = [s for s in sel.split if p(s) != want]
        if not wrong:
            continue
        positive = op in ("=", "=~")
        if want and op == "=":
            replace.append((i, "=~", alternation([v, *wrong])))
        elif not want and op == "!=":
            replace.append((i, "!~", alternation([v, *wrong])))
        elif want == positive and op in ("=~", "!~"):
            replace.append((i, op, f"{v}|{alternation(wrong)}"))
        else:
            verb = "matches" if p(wrong[0]) else "does not match"
            raise Manual(
                f"{sel.label}{op}{v!r} {verb} {wrong[0]!r} but not {sel.old!r}: "
                "preserving its meaning needs a human"
            )
    return Plan(tuple(replace)) if replace else None


def plan_split(mine: Mine, sel: Selection, in_ratio: bool) -> Plan | None:
    """Count real faults only: exclude split values the selector would now count."""
    try:
        preds = [predicate(op, v) for _, op, v in mine]
    except Unsure as e:
        raise Manual(str(e)) from e
    counted = [s for s in sel.split if all(p(s) for p in preds)]
    if not counted or explicit_split(mine, sel):
        return None
    if not mine and not in_ratio:
        return None  # a plain total (throughput) keeps counting every outcome
    for i, op, v in mine:
        parts = v.split("|")
        if op == "=~" and all(_LITERAL.fullmatch(p) for p in parts):
            rest = [p for p in parts if p not in counted]
            if rest and len(rest) < len(parts):
                return Plan(((i, "=~", "|".join(rest)),))  # a split value named: drop it
    # Otherwise an exclusion beside the matchers, which stay as written: the smallest
    # edit, and equality matchers cost Prometheus less than a regex.
    if len(counted) == 1:
        return Plan(add=(sel.label, "!=", counted[0]))
    return Plan(add=(sel.label, "!~", alternation(counted)))
