"""The parse tree side of a migration: parsing (masked), selectors in textual order with
their context (ratios, thresholds, aggregation), and what is compared to accept an edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from errclass.migrate import _promql
from errclass.migrate._semantics import Matcher

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
_COMPARISONS = frozenset((">", "<", ">=", "<=", "==", "!="))


@dataclass(slots=True)
class Sel:
    node: Any
    raw_name: str | None  # as written before the braces
    in_ratio: bool = False
    _matchers: tuple[Matcher, ...] | None = None

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        if self._matchers is None:  # read from the tree only when needed
            self._matchers = matchers_of(self.node)
        return self._matchers

    @property
    def name(self) -> str | None:
        if self.raw_name is not None:
            return self.raw_name
        for lbl, op, v in self.matchers:
            if lbl == "__name__" and op == "=":
                return v
        return None


def parse(text: str) -> Any:
    import promql_parser

    return promql_parser.parse(_promql.mask(text))


def matchers_of(vs: Any) -> tuple[Matcher, ...]:
    return tuple((m.name, _OPS[str(m.op)], m.value) for m in vs.matchers.matchers)


class Walk:
    """Selectors in textual order, with ratio spans and threshold comparisons."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.sels: list[Sel] = []
        self.ratios: list[tuple[int, int, int]] = []  # lhs start, rhs start, end
        self.thresholds: list[tuple[int, int]] = []  # compared side start, end
        self.aggregated: set[int] = set()  # selectors whose *label* an aggregation drops

    def visit(self, node: Any) -> None:
        kind = type(node).__name__
        if kind == "VectorSelector":
            self.sels.append(Sel(node, node.name))
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


def skeleton(tree: Any, sels: list[Sel]) -> str | None:
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


def signature(s: Sel) -> tuple[str | None, tuple[Matcher, ...], str, str]:
    vs = s.node
    return (s.raw_name, s.matchers, repr(vs.offset), repr(vs.at))
