"""Migrate one PromQL expression: plan on the parse tree, edit the original text, and
accept the edit only if re-parsing it gives the intended tree."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from errclass.migrate import _lexer
from errclass.migrate._semantics import (
    ByHand,
    Matcher,
    Mine,
    Plan,
    Selection,
    counts_old,
    decide,
    explicit_split,
    family,
)
from errclass.migrate._tree import (
    Walk,
    follow,
    matchers_of,
    or_groups,
    parse,
    printed_at,
    skeleton,
)

_REVIEWED = "errclass: retuned"
# Expressions remembered in one run: far more than a corpus repeats, and a bound on the
# memory a huge corpus of distinct expressions can take.
_MEMO_SIZE = 20_000


@dataclass(slots=True)
class Finding:
    """One thing migrate/check reports about an expression."""

    status: str  # changed | manual | retune | skipped
    message: str
    old: str = ""
    new: str = ""
    of_edit: bool = False  # describes the edit itself: dropped if the edit is


@dataclass(slots=True)
class ExprResult:
    text: str
    new_text: str
    edits: list[tuple[int, int, str]] = field(default_factory=list)  # on *text*
    findings: list[Finding] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.new_text != self.text


# What migrate_expr found, by the expression and its flags, for one selection.
Memo = dict[tuple[str, bool, bool, bool, bool], ExprResult]


# --- planning ------------------------------------------------------------------


def _mark_ratios(walk: Walk, mine: dict[int, Mine], sel: Selection) -> None:
    for a, b, c in walk.ratios:
        mine_here = [i for i in range(a, c) if i in mine]
        if not mine_here or mine_here[-1] < b:
            continue  # no target in the denominator
        if any(explicit_split(mine[i], sel) for i in mine_here):
            continue  # a share of client_gone on purpose: leave the ratio alone
        for s in walk.sels[a:c]:
            s.in_ratio = True


# Far beyond any real expression, and well below the depth that makes promql-parser
# overflow its stack (it did at ~9,000 nested unary minus signs).
_LONGEST = 8000


def migrate_expr(
    text: str,
    sel: Selection,
    *,
    alert: bool = False,
    threshold_elsewhere: bool = False,
    ratio: bool = False,
    series: bool = True,
    memo: Memo | None = None,
) -> ExprResult:
    """Plan, edit and verify one expression. Never raises for bad input: problems
    become findings and the text is left as it is.

    An expression that cannot name the metric (its name is not in the text) cannot need
    a change and is not parsed at all. *series*: its result is used series by series (not
    so for Grafana's ``label_values``), so a reason label left in it matters. *memo*:
    what was found for the expressions already seen with *sel* (real dashboards repeat
    whole queries), for one run.
    """
    result = ExprResult(text, text)
    if not sel.mentions(text):
        return result
    key = (text, alert, threshold_elsewhere, ratio, series)
    if memo is None:
        return _planned(text, sel, result, key)
    done = memo.get(key)
    if done is None:
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        done = memo[key] = _planned(text, sel, result, key)
    # a copy: callers drop an edit (and its findings) from their own result
    return ExprResult(text, done.new_text, list(done.edits), list(done.findings))


def _planned(
    text: str, sel: Selection, result: ExprResult, key: tuple[str, bool, bool, bool, bool]
) -> ExprResult:
    _, alert, threshold_elsewhere, ratio, series = key
    if len(text) > _LONGEST:
        why = f"longer than {_LONGEST:,} characters: promql-parser can crash on such depths"
        result.findings.append(Finding("skipped", f"not parsed, {why}"))
        return result
    try:
        _migrate(
            text,
            sel,
            result,
            alert=alert,
            threshold_elsewhere=threshold_elsewhere,
            ratio=ratio,
            series=series,
        )
    except RecursionError:  # in promql-parser's tree or in ours
        result = ExprResult(text, text, findings=[Finding("skipped", "nested too deeply")])
    return result


def _migrate(
    text: str,
    sel: Selection,
    result: ExprResult,
    *,
    alert: bool,
    threshold_elsewhere: bool,
    ratio: bool,
    series: bool,
) -> None:
    try:
        tree = parse(text)
    except ValueError as e:
        result.findings.append(Finding("skipped", f"not valid PromQL: {e}"))
        return
    walk = Walk(sel.label)
    walk.visit(tree)
    mine: dict[int, Mine] = {}
    by_name = "__name__" in text
    for i, s in enumerate(walk.sels):
        if s.raw_name is not None and not by_name and not sel.targets(s.raw_name):
            # another metric, and no __name__ matcher anywhere that could name ours
            # (nor one in an `or` group): nothing below can apply, its matchers unread
            continue
        name = s.name
        if not s.matchers and (groups := or_groups(s.node)):
            _or_selector(s.raw_name, groups, sel, result)
        elif sel.targets(name):
            mine[i] = s.mine(sel.label)
        elif name is None and _by_name_regex(s.matchers, sel):
            result.findings.append(
                Finding(
                    "manual",
                    "selects the metric by a __name__ regex: review by hand",
                    _show(name, s.matchers),
                )
            )
    if not mine:
        return
    if sel.mode == "split":  # ratios change what split mode does, never preserve mode
        _mark_ratios(walk, mine, sel)
        if ratio:
            for s in walk.sels:
                s.in_ratio = True
    plans = _plans(walk, mine, sel, result)
    if alert and sel.mode == "split" and _REVIEWED not in text:
        spans = [(0, len(walk.sels))] if threshold_elsewhere else walk.thresholds
        _retune(walk, spans, mine, sel, result)
    if plans:
        _edit(text, walk, tree, plans, sel=sel, result=result, series=series, mine=mine)


def _plans(
    walk: Walk, mine: dict[int, Mine], sel: Selection, result: ExprResult
) -> dict[int, Plan]:
    """The plan of each selected selector (a human's decision is a finding), none on
    one side only of a ratio of two metrics."""
    plans: dict[int, Plan] = {}
    for i, m in mine.items():
        plan = decide(m, sel, walk.sels[i].in_ratio)
        if isinstance(plan, ByHand):
            s = walk.sels[i]
            result.findings.append(Finding("manual", plan.why, _show(s.name, s.matchers)))
        elif isinstance(plan, Plan):
            plans[i] = plan
    if plans and walk.ratios:
        _one_sided(walk, plans, mine, sel, result)
    return plans


def _one_sided(
    walk: Walk, plans: dict[int, Plan], mine: dict[int, Mine], sel: Selection, result: ExprResult
) -> None:
    """Drop the plans of selectors in a ratio that also reads a metric not selected: an
    edit of one of two different metrics changes what the ratio means (the mean
    ``x_sum / x_count`` would divide the time of every request by the count of some).
    In split mode any such metric counts; preserve mode keeps each selector's meaning,
    so only one with its own matcher on the label (which the split changes too)."""
    dropped: dict[int, None] = {}
    others: dict[str, None] = {}
    for a, _, c in walk.ratios:
        planned = [i for i in range(a, c) if i in plans]
        if not planned:
            continue
        foreign = [
            _show(s.name, s.matchers) if s.name is None else s.name
            for k, s in enumerate(walk.sels[a:c], a)
            if k not in mine and (sel.mode == "split" or s.mine(sel.label))
        ]
        if foreign:
            dropped.update(dict.fromkeys(planned))
            others.update(dict.fromkeys(foreign))
    if not dropped:
        return
    names = list(dict.fromkeys(walk.sels[i].name or "?" for i in dropped))
    siblings = [f for n in others if (f := family(n)) and any(family(m) == f for m in names)]
    how = (
        f"select the whole histogram (--metric {siblings[0]}) to edit both sides"
        if siblings
        else f"exclude {'|'.join(sel.split)} on both sides by hand"
    )
    result.findings.append(
        Finding(
            "manual",
            f"a ratio of {', '.join(names)} with {', '.join(others)}, which is not "
            f"selected: an edit on one side only would change what it means; {how}",
            ", ".join(names),
        )
    )
    for i in dropped:
        del plans[i]


def _retune(
    walk: Walk,
    spans: list[tuple[int, int]],
    mine: dict[int, Mine],
    sel: Selection,
    result: ExprResult,
) -> None:
    for a, b in spans:
        for i in range(a, b):
            m = mine.get(i)
            if m is None or not (m or walk.sels[i].in_ratio) or not counts_old(m, sel):
                continue
            result.findings.append(
                Finding(
                    "retune",
                    f"threshold tuned on the volume before the split ({sel.label}="
                    f"{sel.old!r} also counted {', '.join(sel.split)}): re-tune it, "
                    f"then add a '# {_REVIEWED}' comment to the expression",
                )
            )
            return


def _or_selector(
    name: str | None, groups: list[tuple[Matcher, ...]], sel: Selection, result: ExprResult
) -> None:
    """A selector with ``or`` between its matchers: never rewritten, reported when it
    may select the metric."""
    names = [v for g in groups for lbl, op, v in g if lbl == "__name__" and op == "="]
    if (
        sel.targets(name)
        or any(sel.targets(n) for n in names)
        or any(_by_name_regex(g, sel) for g in groups)
    ):
        shown = " or ".join(_matchers_text(g) for g in groups)
        result.findings.append(
            Finding(
                "manual",
                "matchers joined by `or`: review by hand",
                f"{name or ''}{{{shown}}}",
            )
        )


def _by_name_regex(matchers: tuple[Matcher, ...], sel: Selection) -> bool:
    """Could a ``__name__=~`` matcher among *matchers* select the metric?"""
    return any(lbl == "__name__" and op == "=~" and sel.may_match(v) for lbl, op, v in matchers)


def _show(name: str | None, matchers: tuple[Matcher, ...]) -> str:
    """A selector as a human reads it."""
    ms = _matchers_text(matchers)
    return f"{name or ''}{{{ms}}}" if ms or not name else name


def _matchers_text(matchers: tuple[Matcher, ...]) -> str:
    return ", ".join([f"{lbl}{op}{_quote(v)}" for lbl, op, v in matchers])


def _quote(v: str) -> str:
    return '"' + _lexer.encode_string(v, '"') + '"'


# --- editing -------------------------------------------------------------------


def _edit(
    text: str,
    walk: Walk,
    tree: Any,
    plans: dict[int, Plan],  # in selector order
    *,
    sel: Selection,
    result: ExprResult,
    series: bool,
    mine: dict[int, Mine],
) -> None:
    try:
        spans = _locate(text, walk, sel, plans)
    except _lexer.LexError as e:
        return _untouched(result, f"could not locate selectors ({e})")
    if spans is None:
        return _untouched(result, "the selectors found in the text do not match the parse tree")
    edits: dict[int, list[tuple[int, int, str]]] = {}
    for i, plan in plans.items():
        span = spans[i]
        if [(m.label, m.op, m.value) for m in span.matchers] != list(walk.sels[i].matchers):
            return _untouched(
                result, f"selector {i + 1}: the text and the parse tree disagree on its matchers"
            )
        try:
            edits[i] = _selector_edits(text, span, plan, spans)
        except _lexer.LexError as e:
            return _untouched(result, str(e))
    flat = [e for es in edits.values() for e in es]
    new_text = apply_edits(text, flat)
    intended = {i: plan.apply(walk.sels[i].matchers) for i, plan in plans.items()}
    why = _checked(
        text, new_text, walk=walk, tree=tree, plans=plans, spans=spans, intended=intended
    )
    if why:
        return _untouched(result, why)
    result.new_text = new_text
    result.edits = flat
    aggregated = walk.aggregated if series and sel.mode == "preserve" else set()
    for i, plan in plans.items():
        s = walk.sels[i]
        what = "excluded from a ratio" if s.in_ratio and plan.add else "rewritten"
        before, after = _as_written(text, spans[i], edits[i])
        if "\n" in before:  # one line in the report
            before, after = _show(s.name, s.matchers), _show(s.name, intended[i])
        result.findings.append(Finding("changed", f"{sel.mode}: {what}", before, after, True))
        split_series = sel.mode == "preserve" and counts_old(mine[i], sel)
        if series and split_series and i not in aggregated:
            result.findings.append(
                Finding(
                    "manual",
                    f"the result keeps the {sel.label} label: after the split one series "
                    f"becomes {1 + len(sel.split)} ({', '.join((sel.old, *sel.split))}), so "
                    f"per-series values and thresholds change unless summed, e.g. "
                    f"sum without ({sel.label}) (...)",
                    before,
                    of_edit=True,
                )
            )
    return None


def _as_written(
    text: str, span: _lexer.SelectorSpan, edits: list[tuple[int, int, str]]
) -> tuple[str, str]:
    """The selector as written in *text*, and with its *edits*."""
    start = span.name_end - len(span.name) if span.name is not None else span.open or 0
    end = span.close + 1 if span.close is not None else span.name_end
    old = text[start:end]
    return old, apply_edits(old, [(a - start, b - start, new) for a, b, new in edits])


def _untouched(result: ExprResult, why: str) -> None:
    result.findings.append(Finding("skipped", f"left untouched: {why}"))


def _locate(
    text: str, walk: Walk, sel: Selection, wanted: dict[int, Plan]
) -> dict[int, _lexer.SelectorSpan] | None:
    """Text spans of the tree's selectors by index: first by scanning for the metric
    names only (fast), else by lexing everything; None if text and tree disagree."""
    if not sel.patterns:
        fast = _lexer.named_selectors(text, sel.names)
        names = sel.names
        named = [i for i, s in enumerate(walk.sels) if s.raw_name in names]
        if (
            fast is not None
            and len(fast) == len(named)
            and all(s.name == walk.sels[i].raw_name for s, i in zip(fast, named, strict=True))
            and all(i in named for i in wanted)
        ):
            return dict(zip(named, fast, strict=True))
    spans = _lexer.selectors(text)
    if [s.name for s in spans] != [s.raw_name for s in walk.sels]:
        return None
    return dict(enumerate(spans))


# A regex matcher's operator, and the equality one of its verified twin.
_PLAIN = {"=~": "=", "!~": "!="}


def _plain(plan: Plan) -> Plan:
    """*plan* with equality operators where it writes regex ones.

    An edit is verified through this twin: the same text but for the operators, which
    the lexer reads as one token either way (``=~"`` and ``="`` start the same string),
    so both parse to the same tree but for the operators. promql-parser compiles every
    regex it parses, which made the verification of a regex edit cost three times a
    plain one; each regex written is compiled once instead, by _bad_regex."""
    add = plan.add
    if all(op not in _PLAIN for _, op, _ in plan.replace) and (add is None or add[1] not in _PLAIN):
        return plan
    if add is not None:
        add = (add[0], _PLAIN.get(add[1], add[1]), add[2])
    return Plan(tuple([(i, _PLAIN.get(op, op), v) for i, op, v in plan.replace]), add)


def _checked(
    text: str,
    new_text: str,
    *,
    walk: Walk,
    tree: Any,
    plans: dict[int, Plan],
    spans: dict[int, _lexer.SelectorSpan],
    intended: dict[int, tuple[Matcher, ...]],
) -> str:
    """_verify of the edit *new_text*, through its plain twin where it writes a regex:
    the same plans' edits with plain operators (their values are the ones already
    written, so they encode alike), and each regex written compiled on its own."""
    twins = {i: _plain(plan) for i, plan in plans.items()}
    if all(twins[i] is plan for i, plan in plans.items()):  # no regex written
        return _verify(new_text, walk, tree, intended)
    if why := _bad_regex(plans.values()):
        return why
    edits = [e for i, twin in twins.items() for e in _selector_edits(text, spans[i], twin, spans)]
    plain = {i: twin.apply(walk.sels[i].matchers) for i, twin in twins.items()}
    return _verify(apply_edits(text, edits), walk, tree, plain)


def _bad_regex(plans: Iterable[Plan]) -> str:
    """Why a regex the plans write does not compile ("" if each does)."""
    for plan in plans:
        written = [(op, value) for _, op, value in plan.replace]
        if plan.add is not None:
            written.append(plan.add[1:])
        for op, value in written:
            if op in _PLAIN and (why := _regex_error(value)):
                return f"the edited expression does not parse: {why}"
    return ""


@functools.lru_cache(maxsize=1024)
def _regex_error(value: str) -> str:
    """promql-parser's error for a regex matcher with *value* ("" if it compiles)."""
    try:
        parse('x{_=~"' + _lexer.encode_string(value, '"') + '"}')
    except ValueError as e:
        return str(e)
    return ""


def _verify(new_text: str, walk: Walk, tree: Any, intended: dict[int, tuple[Matcher, ...]]) -> str:
    """Re-parse the edit and compare the trees: each changed selector, at its place in
    the new tree, carries exactly the intended matchers and the same name; and the rest
    is the same (offsets, @ and all): the new tree prints as the old one with the changed
    selectors printed with their intended matchers or, where that print could be
    ambiguous or differs, with the changed selectors cut out both trees print the same."""
    try:
        new_tree = parse(new_text)
    except ValueError as e:
        return f"the edited expression does not parse: {e}"
    old_nodes, new_nodes = [], []
    for i, matchers in intended.items():
        old = walk.sels[i]
        try:
            node = follow(new_tree, old.path)
        except (AttributeError, IndexError, TypeError):
            node = None
        if type(node).__name__ != "VectorSelector":
            return "the edit changed the structure of the expression"
        if node.name != old.raw_name or matchers_of(node) != matchers:
            return f"selector {i + 1} did not come out as intended"
        old_nodes.append(old.node)
        new_nodes.append(node)
    printed, new_printed = str(tree), str(new_tree)
    if new_printed == _intended_print(printed, walk, intended):
        return ""
    before = skeleton(printed, old_nodes)
    if before is None or before != skeleton(new_printed, new_nodes):
        return "the edit changed more than the intended matchers"
    return ""


def _intended_print(printed: str, walk: Walk, intended: dict[int, tuple[Matcher, ...]]) -> str:
    """*printed* (the old tree's print) with each changed selector printed the way
    promql-parser prints it, with its intended matchers; "" where the printing would be
    ambiguous (promql-parser prints values unescaped) or the selector is not found."""
    for matchers in intended.values():
        for lbl, _, v in matchers:
            if '"' in v or not (lbl.isidentifier() and lbl.isascii()):
                return ""
    spans = printed_at(printed, [walk.sels[i].node for i in intended])
    if spans is None:
        return ""
    parts: list[str] = []
    pos = 0
    for (at, end), (i, matchers) in zip(spans, intended.items(), strict=True):
        ms = ",".join([f'{lbl}{op}"{v}"' for lbl, op, v in matchers])
        parts += (printed[pos:at], walk.sels[i].raw_name or "", "{", ms, "}")
        pos = end
    parts.append(printed[pos:])
    return "".join(parts)


def _selector_edits(
    text: str,
    span: _lexer.SelectorSpan,
    plan: Plan,
    spans: dict[int, _lexer.SelectorSpan],
) -> list[tuple[int, int, str]]:
    edits: list[tuple[int, int, str]] = []
    for i, op, value in plan.replace:
        m = span.matchers[i]
        if op != m.op:
            edits.append((m.op_start, m.op_start + len(m.op), op))
        body = _lexer.encode_string(value, m.quote)
        edits.append(_minimal(text, m.value_start + 1, m.end - 1, body))
    if plan.add is not None:
        lbl, op, value = plan.add
        # quoted like the matcher before it ('...' or "..."; a raw `...` cannot escape)
        quote = span.matchers[-1].quote if span.matchers else '"'
        quote = '"' if quote == "`" else quote
        new = f"{lbl}{op}{quote}{_lexer.encode_string(value, quote)}{quote}"
        if span.open is None:
            edits.append((span.name_end, span.name_end, "{" + new + "}"))
        elif not span.matchers:
            edits.append((span.open + 1, span.open + 1, new))
        else:
            end = span.matchers[-1].end
            edits.append((end, end, (span.separator or _separator(spans)) + new))
    return edits


def _separator(spans: dict[int, _lexer.SelectorSpan]) -> str:
    """How matchers are separated in this expression (for a selector with only one)."""
    seps = [s.separator for s in spans.values() if s.separator]
    return max(seps, key=seps.count) if seps else ", "


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
