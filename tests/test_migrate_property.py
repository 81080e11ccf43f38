"""Property: over generated PromQL, migrate either leaves an expression alone or the two
parse trees differ only in the reason matchers of the configured metric, and those
matchers mean what the mode promises."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errclass.migrate import Selection, migrate_expr
from errclass.migrate._lexer import mask

M = "stream_outcomes_total"
LABEL = "reason"
UNIVERSE = ("write_failed", "client_gone", "deadline_exceeded", "ok", "creation_failed", "")

reason_values = st.sampled_from(
    [
        "write_failed",
        "client_gone",
        "ok",
        "deadline_exceeded",
        "write_failed|creation_failed",
        "write.*",
        ".*",
        ".+",
        "ok|write_failed",
        "client_gone|write_failed",
        "",
        "x",
    ]
)
ops = st.sampled_from(["=", "!=", "=~", "!~"])
space = st.sampled_from(["", " ", "  "])


@st.composite
def matcher(draw: Any) -> str:
    if draw(st.booleans()):
        label, value = LABEL, draw(reason_values)
    else:
        label, value = draw(
            st.sampled_from(
                [("job", "api"), ("instance", "$instance"), ("code", "5.."), ("result", "error")]
            )
        )
    quote = draw(st.sampled_from(['"', "'"]))
    return f"{label}{draw(space)}{draw(ops)}{draw(space)}{quote}{value}{quote}"


@st.composite
def selector(draw: Any) -> str:
    name = draw(st.sampled_from([M, M, "other_total"]))
    ms = draw(st.lists(matcher(), max_size=3))
    if not ms and draw(st.booleans()):
        return name
    sep = draw(st.sampled_from([",", ", ", " , "]))
    trailing = "," if ms and draw(st.booleans()) else ""
    return f"{name}{{{sep.join(ms)}{trailing}}}"


ranges = st.sampled_from(["5m", "$__rate_interval", "{{.window}}", "[[interval]]", "1h"])


def instant(depth: int) -> st.SearchStrategy[str]:
    base = st.one_of(
        selector(),
        st.builds(lambda s, r: f"rate({s}[{r}])", selector(), ranges),
        st.builds(lambda s: f"{s} offset 5m", selector()),
    )
    if depth == 0:
        return base
    inner = instant(depth - 1)
    return st.one_of(
        base,
        st.builds(
            lambda e, g: f"sum{g}({e})", inner, st.sampled_from(["", " by (job)", " by (job,) "])
        ),
        st.builds(
            lambda a, o, b: f"{a} {o} {b}", inner, st.sampled_from(["/", "+", "and", "or"]), inner
        ),
        st.builds(lambda a, n: f"{a} > {n}", inner, st.sampled_from(["0.5", "$threshold", "1e3"])),
        st.builds(lambda e: f"({e})", inner),
        st.builds(lambda s: f"max_over_time(rate({s}[5m])[1h:5m])", selector()),
        st.builds(
            lambda e, c: f"{e}{c}", inner, st.sampled_from(["", "  # note", " # a {comment}\n"])
        ),
    )


def _parse(text: str) -> Any:
    return promql_parser.parse(mask(text))


def _targets(tree: Any) -> list[Any]:
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(tree, pre_visit=visit)
    return found


def _without_reason(tree: Any) -> str:
    """The tree with each selector on M stripped of its reason matchers."""

    def strip(node: Any) -> Any:
        if isinstance(node, promql_parser.VectorSelector) and node.name == M:
            kept = [m for m in node.matchers.matchers if m.name != LABEL]
            body = ",".join(f"{m.name}{_op(m)}{json.dumps(m.value)}" for m in kept)
            return promql_parser.parse(f"{M}{{{body}}}")
        return None

    return repr(promql_parser.transform(tree, pre_visit=strip))


def _op(m: Any) -> str:
    return {
        "MatchOp.Equal": "=",
        "MatchOp.NotEqual": "!=",
        "MatchOp.Re": "=~",
        "MatchOp.NotRe": "!~",
    }[str(m.op)]


def _predicate(vs: Any) -> dict[str, bool]:
    out = {}
    for v in UNIVERSE:
        ok = True
        for m in vs.matchers.matchers:
            if m.name != LABEL:
                continue
            op = _op(m)
            if op == "=":
                ok &= v == m.value
            elif op == "!=":
                ok &= v != m.value
            elif op == "=~":
                ok &= re.fullmatch(m.value, v) is not None
            else:
                ok &= re.fullmatch(m.value, v) is None
        out[v] = ok
    return out


def _kept(p: dict[str, bool], q: dict[str, bool], sel: Selection, mode: str) -> bool:
    """Does q (the selector after) keep the promise of the mode for p (before)?"""
    for v in UNIVERSE:
        if v not in sel.split:
            ok = q[v] == p[v]  # every other value: exactly as before
        elif mode == "preserve":
            ok = q[v] == p[sel.old]  # a split value: what the old value was
        else:
            ok = q[v] in (False, p[v])  # split: not counted (or left as asked)
        if not ok:
            return False
    return True


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=instant(3), mode=st.sampled_from(["preserve", "split"]))
def test_migrate_changes_only_the_intended_matchers(expr: str, mode: str) -> None:
    try:
        before = _parse(expr)
    except ValueError:
        return  # the generator can build ill-typed expressions; migrate leaves them alone
    sel = Selection((M,), label=LABEL, mode=mode)
    result = migrate_expr(expr, sel)
    manual = any(f.status == "manual" for f in result.findings)
    if result.new_text == expr:
        assert not result.edits
        for old in _targets(before):  # what is left alone either keeps its meaning...
            if old.name == M and not _kept(_predicate(old), _predicate(old), sel, mode):
                assert manual, (old, result.findings)  # ...or is reported
        return
    after = _parse(result.new_text)
    # the trees are equal once the reason matchers on M are set aside
    assert _without_reason(before) == _without_reason(after)
    old_sels, new_sels = _targets(before), _targets(after)
    assert [(s.name, repr(s.offset), repr(s.at)) for s in old_sels] == [
        (s.name, repr(s.offset), repr(s.at)) for s in new_sels
    ]
    for old, new in zip(old_sels, new_sels, strict=True):
        if old.name != M or repr(old) == repr(new):
            # untouched; if its meaning is not kept, it must have been reported
            if old.name == M and not _kept(_predicate(old), _predicate(old), sel, mode):
                assert manual, (old, result.findings)
            assert repr(old) == repr(new)
            continue
        assert _kept(_predicate(old), _predicate(new), sel, mode), (old, new)
