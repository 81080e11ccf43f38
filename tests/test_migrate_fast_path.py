"""Property: migrate's regex fast path (``named_selectors``, which scans only for the
metric names) finds exactly the selectors on those names that the full lexer
(``selectors``) finds, or gives up (None) and leaves it to the lexer; it never finds a
different one and never fails where the lexer reads the text."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from errclass.migrate._lexer import (
    _MASK_SCAN,
    LexError,
    SelectorSpan,
    _name_scanner,
    named_selectors,
    selectors,
)

M = "stream_outcomes_total"
NAMES = frozenset([M, "job:stream_outcomes:rate5m"])

# Names, and words that contain or continue them, or could be read as them.
names = st.sampled_from(
    [
        M,
        "job:stream_outcomes:rate5m",
        "other_total",
        f"{M}_bucket",
        f"x{M}",
        f"{M}:ratio",
        "job",
        "reason",
        "by",
        "offset",
        "sum",
        "rate",
    ]
)
variables = st.sampled_from(
    [
        *("$x", "${x}", "${x:regex}", "${__range_s}", "[[x]]", "[[x:text]]", "{{.window}}"),
        *("{{ ' }}", f"${M}", f"${{{M}}}", f"[[{M}]]", f"{{{{ {M} }}}}"),
    ]
)
quotes = st.sampled_from(['"', "'", "`"])
gaps = st.sampled_from(["", " ", "  ", "\n", " # a comment\n", f" # {M}{{\n", "\t"])


@st.composite
def strings(draw: Any) -> str:
    """A string literal whose body may hold names, other quotes, escapes, braces."""
    quote = draw(quotes)
    parts = draw(
        st.lists(
            st.sampled_from([M, "a", "{", "}", "(", "#", "$x", "'", '"', "`", "\\n", "\\\\"]),
            max_size=4,
        )
    )
    body = ""
    for p in parts:
        if quote == "`":
            body += p.replace("`", "").replace("\\", "")
        elif p == quote:
            body += "\\" + quote
        else:
            body += p
    return f"{quote}{body}{quote}"


@st.composite
def matchers(draw: Any) -> str:
    label = draw(st.sampled_from(["job", "reason", "__name__", M, '"quoted.label"']))
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    return f"{label}{draw(gaps)}{op}{draw(gaps)}{draw(strings())}"


@st.composite
def braces(draw: Any) -> str:
    ms = draw(st.lists(matchers(), max_size=3))
    sep = draw(st.sampled_from([",", ", ", " ,\n  "]))
    trailing = "," if ms and draw(st.booleans()) else ""
    return "{" + draw(gaps) + sep.join(ms) + trailing + draw(gaps) + "}"


@st.composite
def pieces(draw: Any) -> str:
    """One adversarial fragment of PromQL-like text."""
    kind = draw(st.integers(0, 13))
    if kind == 0:  # a selector, maybe with a gap before its braces
        return draw(names) + draw(st.sampled_from(["", " ", "\n"])) + draw(braces())
    if kind >= 11:  # one of the names looked for, bare or with braces
        return draw(st.sampled_from(sorted(NAMES))) + draw(st.one_of(st.just(""), braces()))
    if kind == 1:
        return draw(braces())  # a selector without a name
    if kind == 2:
        return draw(strings())
    if kind == 3:
        return draw(variables)
    if kind == 4:  # a variable glued to a name: a unit, not a selector (${__range_s}s)
        return draw(variables) + draw(names)
    if kind == 5:  # grouping: label names, never selectors
        kw = draw(st.sampled_from(["by", "without", "on", "ignoring", "group_left"]))
        labels = draw(st.lists(names, min_size=1, max_size=3))
        return f"{kw}{draw(gaps)}({', '.join(labels)}{draw(st.sampled_from(['', ',']))})"
    if kind == 6:  # a function call, or a name used as one
        return draw(names) + draw(st.sampled_from(["(", " (", ")"]))
    if kind == 7:
        return draw(st.sampled_from(["[5m]", "[5m:1m]", "[$__rate_interval]", "[{{.window}}]"]))
    if kind == 8:
        return draw(st.sampled_from(["5m", "1e3", "0x1f", ".5", "Inf", "NaN", "@ 100"]))
    if kind == 9:
        return draw(
            st.sampled_from(["+", "/", " and ", " or ", "==", "!=", ">", ",", ":", "(", ")"])
        )
    return "#" + draw(st.sampled_from(["", " ", M, f"{M}{{", '"', "'"])) + "\n"


texts = st.lists(st.tuples(pieces(), gaps), max_size=8).map(
    lambda ps: "".join(p + g for p, g in ps)
)


def _lexed(text: str) -> list[SelectorSpan] | None:
    try:
        return selectors(text)
    except LexError:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
@example(text=f"sum by ({M}) (rate(other_total[5m]))")
@example(text=f"${{__range_s}}{M}")
@example(text=f"other_total{{{M}=~'x'}}")
@example(text=f'"a\\\n{M}" {M}')
def test_the_fast_path_finds_what_the_lexer_finds(text: str) -> None:
    full = _lexed(text)
    if full is None:  # not text the lexer reads: the fast path may fail or give up too
        event("the lexer refuses the text")
        try:
            named_selectors(text, NAMES)
        except LexError:
            pass
        return
    fast = named_selectors(text, NAMES)  # never raises where the lexer reads the text
    if fast is None:
        event("the fast path gives up")
        return
    event("the fast path finds selectors" if fast else "the fast path finds none")
    assert fast == [s for s in full if s.name in NAMES]


def test_the_fast_path_answers_for_the_usual_expressions() -> None:
    """Giving up is always allowed above; on ordinary expressions it must answer."""
    usual = [
        f'sum by (job, instance) (rate({M}{{job="api", reason="write_failed"}}[5m]))',
        f'sum(rate({M}{{reason!="ok"}}[5m])) / sum(rate({M}[$__rate_interval]))',
        f"sum(job:stream_outcomes:rate5m) > 0.5 # {M}{{",
        f"{M}{{\n  job=~\"$job\",  # the job\n  reason='ok',\n}} offset 5m",
        f'label_replace({M}, "d", "{M}", "s", "r") + {M}{{}} and on(job) up',
    ]
    for text in usual:
        fast = named_selectors(text, NAMES)
        assert fast is not None, text
        assert fast, text
        assert fast == [s for s in selectors(text) if s.name in NAMES], text


def test_every_branch_of_the_scanner_starts_with_a_literal() -> None:
    """What makes the scan fast: the regex engine then looks only for the characters that
    can start a branch and skips the rest of the text, instead of trying every branch at
    every position (a group first in a branch defeats that; it did, 13 times slower on
    text that holds no name). Read from the compiled pattern's parse, as the engine does."""
    import re._parser as sre_parse  # the parse the engine's prefix search is built from

    found = _name_scanner(NAMES | {f"{M}_sum", ":x"})
    assert found is not None
    scanner, kinds = found
    assert len(kinds) == scanner.groups + 1
    for pattern in (scanner, _MASK_SCAN):  # mask() scans every expression with a variable
        (op, (_, branches)), *rest = sre_parse.parse(pattern.pattern).data
        assert op is sre_parse.BRANCH and not rest
        firsts = [b.data[0][0] for b in branches]
        assert firsts == [sre_parse.LITERAL] * len(branches)
    # and each branch's one group closes last: what the scan reads the branch's kind by
    for text, kind in [('"a"', "(skip)"), ("# c", "(skip)"), ("$x", "(variable)"), ("'", "(bad)")]:
        m = scanner.search(text)
        assert m is not None and kinds[m.lastindex or 0] == kind, text
    for name in (M, f"{M}_sum", ":x"):
        m = scanner.search(f"1 + {name} {{")
        assert m is not None and kinds[m.lastindex or 0] == name
        assert m.group(m.lastindex or 0) == "{"
    m = scanner.search("by (job)")
    assert m is not None and kinds[m.lastindex or 0] == "(group)"
