"""The parse tree side of a migration: parsing (masked), selectors in textual order with
their context (ratios, thresholds, aggregation) and their place in the tree, and what is
compared to accept an edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from errclass.migrate import _lexer
from errclass.migrate._semantics import Matcher, Mine

_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
_COMPARISONS = frozenset((">", "<", ">=", "<=", "==", "!="))

# Where a selector sits: attribute names, and argument indexes of function calls.
Path = tuple[str | int, ...]


@dataclass(slots=True)
class Sel:
    node: Any
    raw_name: str | None  # as written before the braces
    path: Path = ()
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

    def mine(self, label: str) -> Mine:
        """The matchers on *label*, with their indexes: all a plan depends on."""
        return tuple([(i, m[1], m[2]) for i, m in enumerate(self.matchers) if m[0] == label])


def parse(text: str) -> Any:
    import promql_parser

    return promql_parser.parse(_lexer.mask(text))


def matchers_of(vs: Any) -> tuple[Matcher, ...]:
    return tuple([(m.name, _OPS[str(m.op)], m.value) for m in vs.matchers.matchers])


def or_groups(vs: Any) -> list[tuple[Matcher, ...]]:
    """The groups of a selector whose matchers are joined by ``or`` (its ``matchers``
    are then empty); [] for any other."""
    return [tuple((m.name, _OPS[str(m.op)], m.value) for m in g) for g in vs.matchers.or_matchers]


def follow(tree: Any, path: Path) -> Any:
    """The node at *path* (AttributeError/IndexError if the tree has no such place)."""
    node = tree
    for step in path:
        node = node.args[step] if isinstance(step, int) else getattr(node, step)
    return node


class Walk:
    """Selectors in textual order, with the binary operations and aggregations above
    them, read into ratios, thresholds and dropped labels only when asked (each at most
    once per expression): a mode needs some of them, and only on its metric."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.sels: list[Sel] = []
        # (node, lhs, rhs, lhs start, rhs start, end), in selector indexes
        self._binaries: list[tuple[Any, Any, Any, int, int, int]] = []
        # (node, start, end); node None for scalar(), which drops every label
        self._aggregations: list[tuple[Any, int, int]] = []
        self._ratios: list[tuple[int, int, int]] | None = None

    def visit(self, node: Any, path: Path = ()) -> None:
        kind = type(node).__name__
        if kind == "MatrixSelector":
            vs = node.vector_selector
            self.sels.append(Sel(vs, vs.name, (*path, "vector_selector")))
        elif kind == "VectorSelector":
            self.sels.append(Sel(node, node.name, path))
        elif kind == "Call":
            a = len(self.sels)
            for n, arg in enumerate(node.args):
                self.visit(arg, (*path, n))
            if node.func.name == "scalar":
                self._aggregations.append((None, a, len(self.sels)))
        elif kind == "AggregateExpr":
            if node.param is not None:
                self.visit(node.param, (*path, "param"))
            a = len(self.sels)
            self.visit(node.expr, (*path, "expr"))
            self._aggregations.append((node, a, len(self.sels)))
        elif kind == "BinaryExpr":
            a = len(self.sels)
            lhs, rhs = node.lhs, node.rhs
            self.visit(lhs, (*path, "lhs"))
            b = len(self.sels)
            self.visit(rhs, (*path, "rhs"))
            self._binaries.append((node, lhs, rhs, a, b, len(self.sels)))
        elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            self.visit(node.expr, (*path, "expr"))

    @property
    def ratios(self) -> list[tuple[int, int, int]]:
        """Divisions: (lhs start, rhs start, end); read once (split mode asks twice)."""
        if self._ratios is None:
            binaries = self._binaries
            self._ratios = [(a, b, c) for node, _, _, a, b, c in binaries if str(node.op) == "/"]
        return self._ratios

    @property
    def thresholds(self) -> list[tuple[int, int]]:
        """Comparisons with a number: the compared side's (start, end)."""
        out = []
        for node, lhs, rhs, a, b, c in self._binaries:
            if str(node.op) in _COMPARISONS:
                if _is_number(rhs):
                    out.append((a, b))
                elif _is_number(lhs):
                    out.append((b, c))
        return out

    @property
    def aggregated(self) -> set[int]:
        """Selectors whose *label* an aggregation drops."""
        out: set[int] = set()
        for node, a, b in self._aggregations:
            if node is None or (self.label and _drops(node, self.label)):
                out.update(range(a, b))
        return out


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


def printed_at(printed: str, nodes: list[Any]) -> list[tuple[int, int]] | None:
    """Where each selector node's own print stands in *printed* (its tree's print), in
    order; None if one is not found."""
    out = []
    pos = 0
    for node in nodes:
        own = str(node)
        inner = own[: own.rfind("}") + 1]  # without offset / @, printed after a range
        at = printed.find(inner, pos)
        if at < 0:
            return None
        pos = at + len(inner)
        out.append((at, pos))
    return out


def skeleton(printed: str, nodes: list[Any]) -> str | None:
    """*printed* (a tree's printing) with the given selector nodes cut out, in order; None
    if one is not found.

    Printing is lossy in formatting but not in structure; the cut selectors themselves
    are compared matcher by matcher, from the parsed values.
    """
    spans = printed_at(printed, nodes)
    if spans is None:
        return None
    parts = []
    pos = 0
    for at, end in spans:
        parts.append(printed[pos:at])
        pos = end
    parts.append(printed[pos:])
    return "\x00".join(parts)
