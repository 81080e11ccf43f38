"""Migrate one PromQL expression: plan on the parse tree, edit the original text, and
accept the edit only if re-parsing it gives the intended tree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from errclass.migrate import _promql
from errclass.migrate._semantics import (
    Manual,
    Matcher,
    Plan,
    Selection,
    counts_old,
    explicit_split,
    plan_preserve,
    plan_split,
)

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
_COMPARISONS = frozenset((">", "<", ">=", "<=", "==", "!="))
_REVIEWED = "errclass: retuned"


@dataclass(frozen=True)
class Finding:
    """One thing migrate/check reports about an expression."""

    status: str  # changed | manual | retune | skipped
    message: str
    old: str = ""
    new: str = ""


@dataclass
class ExprResult:
    text: str
    new_text: str
    edits: list[tuple[int, int, str]] = field(default_factory=list)  # on *text*
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_text != self.text


@dataclass
class _Sel:
    node: Any
    raw_name: str | None  # as written before the braces
    in_ratio: bool = False
    _matchers: tuple[Matcher, ...] | None = None

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        if self._matchers is None:  # read from the tree only when needed
            self._matchers = _matchers(self.node)
        return self._matchers

    @property
    def name(self) -> str | None:
        if self.raw_name is not None:
            return self.raw_name
        for lbl, op, v in self.matchers:
            if lbl == "__name__" and op == "=":
                return v
        return None


# --- the tree ------------------------------------------------------------------


def _parse(text: str) -> Any:
    import promql_parser

    return promql_parser.parse(_promql.mask(text))


def _matchers(vs: Any) -> tuple[Matcher, ...]:
    return tuple((m.name, _OPS[str(m.op)], m.value) for m in vs.matchers.matchers)


class _Walk:
    """Selectors in textual order, with ratio spans and threshold comparisons."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.sels: list[_Sel] = []
        self.ratios: list[tuple[int, int, int]] = []  # lhs start, rhs start, end
        self.thresholds: list[tuple[int, int]] = []  # compared side start, end
        self.aggregated: set[int] = set()  # selectors whose *label* an aggregation drops

    def visit(self, node: Any) -> None:
        kind = type(node).__name__
        if kind == "VectorSelector":
            self.sels.append(_Sel(node, node.name))
        elif kind == "MatrixSelector":
            self.visit(node.vector_selector)
        elif kind == "BinaryExpr":
            a = len(self.sels)
            self.visit(node.lhs)
            b = len(self.sels)
            self.visit(node.rhs)
            c = len(self.sels)
            op = str(node.op)
            if op == "/":
                self.ratios.append((a, b, c))
            elif op in _COMPARISONS:
                if _is_number(node.rhs):
                    self.thresholds.append((a, b))
                elif _is_number(node.lhs):
                    self.thresholds.append((b, c))
        elif kind == "AggregateExpr":
            if node.param is not None:
                self.visit(node.param)
            a = len(self.sels)
            self.visit(node.expr)
            if self.label and _drops(node, self.label):
                self.aggregated.update(range(a, len(self.sels)))
        elif kind == "Call":
            a = len(self.sels)
            for arg in node.args:
                self.visit(arg)
            if node.func.name == "scalar":
                self.aggregated.update(range(a, len(self.sels)))
        elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            self.visit(node.expr)


# Aggregations whose output keeps only the grouping labels (topk/bottomk/limitk keep all).
_GROUPING_AGGREGATIONS = frozenset(
    ("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "quantile", "count_values")
)


def _drops(node: Any, label: str) -> bool:
    """Does this aggregation drop *label* from its output?"""
    if str(node.op) not in _GROUPING_AGGREGATIONS:
        return False
    modifier = node.modifier
    if modifier is None:
        return True
    labels = list(modifier.labels)
    if str(modifier.type).endswith("Without"):
        return label in labels
    return label not in labels


def _is_number(node: Any) -> bool:
    kind = type(node).__name__
    if kind in ("ParenExpr", "UnaryExpr"):
        return _is_number(node.expr)
    return kind == "NumberLiteral"


def _skeleton(tree: Any, sels: list[_Sel]) -> str | None:
    """The tree as printed, with the given selectors cut out (None if one is not found).

    Printing is lossy in formatting but not in structure; the cut selectors themselves
    are compared matcher by matcher, from the parsed values.
    """
    text = str(tree)
    parts = []
    pos = 0
    for s in sels:
        printed = str(s.node)
        inner = printed[: printed.rfind("}") + 1]  # without offset / @, printed after a range
        at = text.find(inner, pos)
        if at < 0:
            return None
        parts.append(text[pos:at])
        pos = at + len(inner)
    parts.append(text[pos:])
    return "\x00".join(parts)


def _signature(s: _Sel) -> tuple[str | None, tuple[Matcher, ...], str, str]:
    vs = s.node
    return (s.raw_name, s.matchers, repr(vs.offset), repr(vs.at))


# --- planning ------------------------------------------------------------------


def _mark_ratios(walk: _Walk, sel: Selection) -> None:
    for a, b, c in walk.ratios:
        side = walk.sels[a:c]
        if not any(sel.targets(s.name) for s in walk.sels[b:c]):
            continue
        if any(sel.targets(s.name) and explicit_split(s.matchers, sel) for s in side):
            continue  # a share of client_gone on purpose: leave the ratio alone
        for s in side:
            s.in_ratio = True


def _plan(s: _Sel, sel: Selection) -> Plan | None:
    if sel.mode == "preserve":
        return plan_preserve(s.matchers, sel)
    return plan_split(s.matchers, sel, s.in_ratio)


def migrate_expr(
    text: str,
    sel: Selection,
    *,
    alert: bool = False,
    threshold_elsewhere: bool = False,
    ratio: bool = False,
    series: bool = True,
) -> ExprResult:
    """Plan, edit and verify one expression. Never raises for bad input: problems
    become findings and the text is left as it is.

    An expression that cannot name the metric (its name is not in the text) cannot need
    a change and is not parsed at all. *series*: its result is used series by series (not
    so for Grafana's ``label_values``), so a reason label left in it matters.
    """
    result = ExprResult(text, text)
    if not sel.mentions(text):
        return result
    try:
        tree = _parse(text)
    except ValueError as e:
        result.findings.append(Finding("skipped", f"not valid PromQL: {e}"))
        return result
    walk = _Walk(sel.label)
    walk.visit(tree)
    targets = [i for i, s in enumerate(walk.sels) if sel.targets(s.name)]
    for s in walk.sels:
        if s.name is None and any(
            lbl == "__name__" and op == "=~" and sel.may_match(v) for lbl, op, v in s.matchers
        ):
            result.findings.append(
                Finding(
                    "manual", "selects the metric by a __name__ regex: review by hand", _show(s)
                )
            )
    if not targets:
        return result
    _mark_ratios(walk, sel)
    if ratio:
        for s in walk.sels:
            s.in_ratio = True
    plans: dict[int, Plan] = {}
    for i in targets:
        try:
            plan = _plan(walk.sels[i], sel)
        except Manual as e:
            result.findings.append(Finding("manual", str(e), _show(walk.sels[i])))
            continue
        if plan is not None:
            plans[i] = plan
    if alert and sel.mode == "split" and _REVIEWED not in text:
        spans = [(0, len(walk.sels))] if threshold_elsewhere else walk.thresholds
        _retune(walk, spans, sel, result)
    if plans:
        _edit(text, walk, tree, plans, sel=sel, result=result, series=series)
    return result


def _retune(walk: _Walk, spans: list[tuple[int, int]], sel: Selection, result: ExprResult) -> None:
    for a, b in spans:
        for s in walk.sels[a:b]:
            mine = any(lbl == sel.label for lbl, _, _ in s.matchers)
            if sel.targets(s.name) and counts_old(s.matchers, sel) and (mine or s.in_ratio):
                result.findings.append(
                    Finding(
                        "retune",
                        f"threshold tuned on the volume before the split ({sel.label}="
                        f"{sel.old!r} also counted {', '.join(sel.split)}): re-tune it, "
                        f"then add a '# {_REVIEWED}' comment to the expression",
                    )
                )
                return


def _show(s: _Sel) -> str:
    ms = ", ".join(f"{lbl}{op}{_quote(v)}" for lbl, op, v in s.matchers)
    return f"{s.name or ''}{{{ms}}}" if ms or not s.name else s.name


def _quote(v: str) -> str:
    return '"' + _promql.encode_string(v, '"') + '"'


# --- editing -------------------------------------------------------------------


def _edit(
    text: str,
    walk: _Walk,
    tree: Any,
    plans: dict[int, Plan],
    *,
    sel: Selection,
    result: ExprResult,
    series: bool,
) -> None:
    def fail(why: str) -> None:
        result.findings.append(Finding("skipped", f"left untouched: {why}"))

    try:
        spans = _locate(text, walk, sel, set(plans))
    except _promql.LexError as e:
        fail(f"could not locate selectors ({e})")
        return
    if spans is None:
        fail("the selectors found in the text do not match the parse tree")
        return
    # a matcher added to a one-matcher selector is separated like the others here
    seps = [s.separator for s in spans.values() if s.separator]
    default_sep = max(set(seps), key=seps.count) if seps else ", "
    edits: list[tuple[int, int, str]] = []
    for i, plan in sorted(plans.items()):
        span = spans[i]
        found = tuple((m.label, m.op, m.value) for m in span.matchers)
        if found != walk.sels[i].matchers:
            fail(f"selector {i + 1}: the text and the parse tree disagree on its matchers")
            return
        try:
            edits.extend(_selector_edits(text, span, plan, default_sep))
        except _promql.LexError as e:
            fail(str(e))
            return
    new_text = apply_edits(text, edits)
    why = _verify(new_text, walk, tree, plans)
    if why:
        fail(why)
        return
    result.new_text = new_text
    result.edits = edits
    for i in sorted(plans):
        s = walk.sels[i]
        after = _Sel(s.node, s.raw_name, _matchers=plans[i].apply(s.matchers))
        what = "excluded from a ratio" if s.in_ratio and plans[i].add else "rewritten"
        result.findings.append(Finding("changed", f"{sel.mode}: {what}", _show(s), _show(after)))
        split_series = sel.mode == "preserve" and counts_old(s.matchers, sel)
        if series and split_series and i not in walk.aggregated:
            result.findings.append(
                Finding(
                    "manual",
                    f"the result keeps the {sel.label} label: after the split one series "
                    f"becomes {1 + len(sel.split)} ({', '.join((sel.old, *sel.split))}), so "
                    f"per-series values and thresholds change unless summed, e.g. "
                    f"sum without ({sel.label}) (...)",
                    _show(s),
                )
            )


def _locate(
    text: str, walk: _Walk, sel: Selection, wanted: set[int]
) -> dict[int, _promql.SelectorSpan] | None:
    """Text spans of the tree's selectors by index: first by scanning for the metric
    names only (fast), else by lexing everything; None if text and tree disagree."""
    if not sel.patterns:
        fast = _promql.named_selectors(text, sel.names)
        named = [i for i, s in enumerate(walk.sels) if s.raw_name in sel.names]
        if (
            fast is not None
            and [s.name for s in fast] == [walk.sels[i].raw_name for i in named]
            and wanted <= set(named)
        ):
            return dict(zip(named, fast, strict=True))
    spans = _promql.selectors(text)
    if [s.name for s in spans] != [s.raw_name for s in walk.sels]:
        return None
    return dict(enumerate(spans))


def _verify(new_text: str, walk: _Walk, tree: Any, plans: dict[int, Plan]) -> str:
    """Re-parse the edit: the changed selectors carry exactly the planned matchers (and
    the same name, offset and @), and with them cut out both trees print the same."""
    try:
        new_tree = _parse(new_text)
    except ValueError as e:
        return f"the edited expression does not parse: {e}"
    new_walk = _Walk()
    new_walk.visit(new_tree)
    if len(new_walk.sels) != len(walk.sels):
        return "the edit changed the number of selectors"
    changed = sorted(plans)
    for i in changed:
        old, new = walk.sels[i], new_walk.sels[i]
        want = _signature(old)
        if _signature(new) != (want[0], plans[i].apply(old.matchers), want[2], want[3]):
            return f"selector {i + 1} did not come out as intended"
    before = _skeleton(tree, [walk.sels[i] for i in changed])
    after = _skeleton(new_tree, [new_walk.sels[i] for i in changed])
    if before is None or after is None or before != after:
        return "the edit changed more than the intended matchers"
    return ""


def _selector_edits(
    text: str, span: _promql.SelectorSpan, plan: Plan, default_sep: str
) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    for i, op, value in plan.replace:
        m = span.matchers[i]
        if op != m.op:
            edits.append((m.op_start, m.op_start + len(m.op), op))
        body = _promql.encode_string(value, m.quote)
        edits.append(_minimal(text, m.value_start + 1, m.end - 1, body))
    if plan.add is not None:
        lbl, op, value = plan.add
        new = f"{lbl}{op}{_quote(value)}"
        if span.open is None:
            edits.append((span.name_end, span.name_end, "{" + new + "}"))
        elif not span.matchers:
            edits.append((span.open + 1, span.open + 1, new))
        else:
            end = span.matchers[-1].end
            edits.append((end, end, (span.separator or default_sep) + new))
    return edits


def _minimal(text: str, start: int, end: int, new: str) -> tuple[int, int, str]:
    """Replace text[start:end] by *new*, trimmed to the part that differs."""
    old = text[start:end]
    if new.startswith(old):  # the usual case: alternatives appended
        return (end, end, new[len(old) :])
    pre = 0
    while pre < min(len(old), len(new)) and old[pre] == new[pre]:
        pre += 1
    suf = 0
    while suf < min(len(old), len(new)) - pre and old[-1 - suf] == new[-1 - suf]:
        suf += 1
    return (start + pre, end - suf, new[pre : len(new) - suf])


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    out = []
    pos = 0
    for start, end, new in sorted(edits):
        if start < pos:
            raise ValueError("overlapping edits")
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)
