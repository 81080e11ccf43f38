"""PromQL text: a small lexer that finds selectors with their source positions, and
masking of Grafana/Sloth template variables so promql_parser can read the rest.

promql_parser gives no positions and its printer is lossy, so edits are made on the
original text at positions found here; the parser is used only to check them.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

# The pieces every scanner here reads alike, written once: string literals ("...", '...',
# `...`), a comment, Grafana's template variables, and the gap (whitespace and comments)
# that may stand between tokens.
_STRINGS = (r'"(?:[^"\\\n]|\\.)*"', r"'(?:[^'\\\n]|\\.)*'", r"`[^`]*`")
_COMMENT = r"\#[^\n]*"
_VARIABLES = (
    r"\$\{[^}\s]*\}",
    r"\$[A-Za-z_][A-Za-z0-9_]*",
    r"\[\[[A-Za-z0-9_:.]+\]\]",
    r"\{\{[^}]*\}\}",
)
_GAP = r"(?:\s|" + _COMMENT + r")*"

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>"""
    + _COMMENT
    + r""")
  | (?P<str>"""
    + "|".join(_STRINGS)
    + r""")
  | (?P<var>"""
    + "|".join(_VARIABLES)
    + r""")
  | (?P<ident>(?:[A-Za-z_]|:(?=[A-Za-z_]))[A-Za-z0-9_:]*)  # a name may start with ":"
  | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:[a-zA-Z]+\d*)*)
  | (?P<op>=~|!~|!=|==|<=|>=|[=<>+\-*/%^@:,(){}\[\]])
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Identifiers that are never selectors.
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "unless",
        "atan2",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "start",
        "end",
    ]
)
_GROUPING = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right"])
# Aggregation operators may be followed by ``by``/``without`` before their parentheses.
_AGGREGATORS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ]
)


class LexError(ValueError):
    """The text is not PromQL this lexer understands; nothing is located."""


class Token(NamedTuple):
    kind: str
    text: str
    start: int
    end: int


def tokens(text: str, *, significant: bool = False) -> list[Token]:
    """The tokens of *text* in order; with *significant*, without whitespace/comments."""
    out: list[Token] = []
    skip = ("ws", "comment") if significant else ()
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or ""
        if kind in skip:
            continue
        if kind == "bad":
            raise LexError(f"unexpected character {m.group()!r} at offset {m.start()}")
        out.append(Token(kind, m.group(), m.start(), m.end()))
    return out


# --- masking -------------------------------------------------------------------


def mask(text: str) -> str:
    """*text* with template variables outside string literals replaced by placeholders.

    A variable after ``[``, ``:`` or ``offset`` becomes a duration (``5m``; just ``5``
    when a unit letter follows, as in ``${__range_s}s``), anywhere else a number.
    Deterministic, so an original and its edit are masked alike.
    """
    if "$" not in text and "[[" not in text and "{{" not in text:
        return text
    parts: list[str] = []
    pos = 0
    for m in _MASK_SCAN.finditer(text):
        if _MASK_KINDS[m.lastindex or 0] != _VARIABLE:
            continue  # a string literal or a comment: left as it is
        before = text[: m.start()].rstrip()
        after = text[m.end() : m.end() + 1]
        # (the look-behind search only where it can match: it tries every position)
        offset = before.endswith("offset") and _OFFSET_BEFORE.search(before) is not None
        duration = before.endswith(("[", ":")) or offset
        parts.append(text[pos : m.start()])
        parts.append(("5" if after.isalpha() else "5m") if duration else "1")
        pos = m.end()
    parts.append(text[pos:])
    return "".join(parts)


# What scanners find beside metric names (none of these is a metric name).
_SKIP, _VARIABLE, _BAD, _GROUP = "(skip)", "(variable)", "(bad)", "(group)"
# String literals, comments and template variables, each a branch that starts with a
# literal character, with its kind: see _name_scanner.
_LITERALS = (
    *((rx, _SKIP) for rx in (*_STRINGS, _COMMENT)),
    *((rx, _VARIABLE) for rx in _VARIABLES),
)
_MASK_SCAN = re.compile("|".join(rx + "()" for rx, _ in _LITERALS))
_MASK_KINDS = ("", *(kind for _, kind in _LITERALS))  # by the index of a branch's group
_OFFSET_BEFORE = re.compile(r"(?<![A-Za-z0-9_:])offset$")


# --- string literals ---------------------------------------------------------

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.DOTALL)


def decode_string(literal: str) -> str:
    """The value of a PromQL string literal (Go escapes; backquotes are raw)."""
    quote, body = literal[0], literal[1:-1]
    if quote == "`" or "\\" not in body:
        return body

    def one(m: re.Match[str]) -> str:
        esc = m.group()[1:]
        if esc[0] in "xuU":
            return chr(int(esc[1:], 16))
        if esc[0].isdigit():
            return chr(int(esc, 8))
        if esc in _ESCAPES:
            return _ESCAPES[esc]
        if esc in ("\\", '"', "'"):
            return esc
        raise LexError(f"unknown escape \\{esc} in {literal}")

    return _ESCAPE.sub(one, body)


def encode_string(value: str, quote: str) -> str:
    """*value* as the body of a string literal quoted with *quote* (no quotes added)."""
    if quote == "`":
        if "`" in value:
            raise LexError("a backquote cannot be written inside a raw string")
        return value
    if "\\" not in value and quote not in value and "\n" not in value:
        return value  # the usual case
    return value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")


# --- selectors -----------------------------------------------------------------


class MatcherSpan(NamedTuple):
    label: str
    op: str
    value: str
    start: int  # of the label
    op_start: int
    value_start: int  # of the opening quote
    end: int  # after the closing quote
    quote: str


class SelectorSpan(NamedTuple):
    name: str | None
    name_end: int  # where ``{...}`` would go for a bare name
    open: int | None  # offset of ``{``, None for a bare name
    close: int | None  # offset of ``}``
    matchers: tuple[MatcherSpan, ...]
    separator: str  # what separates matchers here (",", ", "...); "" if fewer than two
    trailing_comma: bool


def selectors(text: str) -> list[SelectorSpan]:
    """Every vector selector in *text*, in textual order."""
    sig = tokens(text, significant=True)
    out: list[SelectorSpan] = []
    i = 0
    n = len(sig)
    while i < n:
        tok = sig[i]
        nxt = sig[i + 1] if i + 1 < n else None
        if tok.kind == "ident":
            if tok.text in _GROUPING and nxt is not None and nxt.text == "(":
                i = _skip_parens(sig, i + 1)
                continue
            glued = i > 0 and sig[i - 1].kind == "var" and sig[i - 1].end == tok.start
            if glued or tok.text in _KEYWORDS or (nxt is not None and nxt.text == "("):
                i += 1  # a unit after a variable (${__range_s}s), a keyword or a function
                continue
            if tok.text in _AGGREGATORS and nxt is not None and nxt.text in ("by", "without"):
                i += 1
                continue
            if nxt is not None and nxt.text == "{":
                sel, i = _braces(text, sig, i + 1, tok.text, tok.end)
                out.append(sel)
                continue
            out.append(SelectorSpan(tok.text, tok.end, None, None, (), "", False))
            i += 1
            continue
        if tok.kind == "op" and tok.text == "{":
            sel, i = _braces(text, sig, i, None, tok.start)
            out.append(sel)
            continue
        i += 1
    return out


@functools.lru_cache(maxsize=64)
def _name_scanner(names: frozenset[str]) -> tuple[re.Pattern[str], tuple[str, ...]] | None:
    """Searched from a position, finds the next string literal, comment, template
    variable or occurrence of a name (with the gap after it and what follows: ``{``,
    ``(``, or a matcher operator and a quote, as after a label), whichever comes first:
    the others are skipped whole by the caller, so only names outside them count, as
    ``mask`` reads the text. A quote that opens no literal is bad. With the scanner, what
    each branch finds by the index of its one group (the last in it, which closes last):
    a name, or what else it is.

    None when a name is also a word the lexer reads otherwise (a keyword, an
    aggregation): those are left to the lexer.

    Searching (instead of matching character by character up to the name) lets the
    regex engine skip the text in between without a Python step per character; and it
    skips it fast only when every top-level branch starts with a literal character (not
    a group, which is why each branch has its group at its end): the engine then looks
    for those characters only, instead of trying every branch at every position."""
    if names & (_KEYWORDS | _AGGREGATORS):
        return None
    branches = [*_LITERALS, (r'"', _BAD), (r"'", _BAD), (r"`", _BAD)]
    parts = [rx + "()" for rx, _ in branches]
    parts += [_word(w) + _GAP + r"\(()" for w in sorted(_GROUPING)]
    after = r"([{(]|(?:=~|!~|!=|=)" + _GAP + r"[\"'`]|)"  # always matches: "" if none
    by_length = sorted(names, key=len, reverse=True)
    parts += [_word(n) + r"(?![A-Za-z0-9_:])" + _GAP + after for n in by_length]
    kinds = ("", *(k for _, k in branches), *([_GROUP] * len(_GROUPING)), *by_length)
    scanner = re.compile("|".join(parts))
    assert scanner.groups == len(kinds) - 1  # one group a branch
    return scanner, kinds


def _word(w: str) -> str:
    """*w* where it starts no word-character run: it starts with its first character and
    only then looks behind it, so that its branch of the scanner starts with a literal."""
    return re.escape(w[0]) + r"(?<![A-Za-z0-9_:.$]" + re.escape(w[0]) + ")" + re.escape(w[1:])


# A hexadecimal number glued to a word: the lexer ends the number where the hex digits
# end (0x1fon is 0x1f and on), which the scan's look-behind cannot tell.
_HEX_GLUED = re.compile(r"0[xX][0-9a-fA-F]+[G-Zg-z_]")


def named_selectors(text: str, names: frozenset[str]) -> list[SelectorSpan] | None:
    """The selectors of the metrics *names* in *text*, in order, found without lexing the
    rest; None when an occurrence may not be a plain selector, or the text is not what
    this scan reads alike with the lexer (the caller lexes all then)."""
    found = _name_scanner(names)
    if found is None or (("0x" in text or "0X" in text) and _HEX_GLUED.search(text)):
        return None
    scanner, kinds = found
    out: list[SelectorSpan] = []
    search = scanner.search
    pos = 0
    var_end = -1
    while (m := search(text, pos)) is not None:
        group = m.lastindex or 0
        name = kinds[group]
        if name == _SKIP:  # a string literal or a comment
            pos = m.end()
            continue
        if name == _VARIABLE:
            pos = var_end = m.end()
            continue
        if name == _BAD:
            return None  # a quote that opens no literal: the lexer decides
        if name == _GROUP:  # by (...), on (...): label names, skipped whole
            close = _closing(text, m.end())
            if close < 0:
                return None
            pos = close + 1
            continue
        start = m.start()
        end = start + len(name)
        after = m.group(group)
        if start == var_end or (after and after != "{"):
            # glued to a variable (a unit, as in ${__range_s}s), a function, or a label
            return None
        if after == "{":
            try:
                sel = _braces_at(text, m.end() - 1, name, end)
            except LexError:
                return None  # the lexer reads braces (and errors) its own way
            out.append(sel)
            pos = (sel.close or 0) + 1
        else:
            out.append(SelectorSpan(name, end, None, None, (), "", False))
            pos = end
    return out


_PLAIN_LABELS = re.compile(r"[^()\"'`#$\[{]*\)")
_PAREN_SCAN = re.compile("|".join(rx for rx, _ in _LITERALS) + r"|(?P<paren>[()])")


def _closing(text: str, pos: int) -> int:
    """The offset of the ``)`` that closes the parenthesis opened before *pos*, counted
    as the lexer counts (not in strings, comments, variables); -1 if none."""
    plain = _PLAIN_LABELS.match(text, pos)  # the usual: by (job, instance)
    if plain is not None:
        return plain.end() - 1
    depth = 1
    for p in _PAREN_SCAN.finditer(text, pos):
        if p.lastgroup == "paren":
            depth += 1 if p.group() == "(" else -1
            if depth == 0:
                return p.start()
    return -1


_MATCHER = re.compile(
    r"(?P<label>[A-Za-z_][A-Za-z0-9_]*|" + _STRINGS[0] + ")" + _GAP
    + r"(?P<op>=~|!~|!=|=)" + _GAP + "(?P<value>(?:" + "|".join(_STRINGS) + "))"
)  # fmt: skip


# One matcher with the gaps around it, the comma after it and the closing brace, if any: a
# selector's matchers are read with one regex match each.
_ITEM = re.compile(_GAP + _MATCHER.pattern + _GAP + r"(?:(?P<comma>,)" + _GAP + r")?(?P<close>\})?")
assert tuple(_ITEM.groupindex) == ("label", "op", "value", "comma", "close")
_EMPTY = re.compile(_GAP + r"\}")


def _braces_at(text: str, pos: int, name: str | None, name_end: int) -> SelectorSpan:
    """The selector whose ``{`` is at *pos*, read a matcher at a time."""
    open_at = pos
    found: list[MatcherSpan] = []
    match = _ITEM.match
    pos += 1
    while True:
        m = match(text, pos)
        if m is None:
            empty = _EMPTY.match(text, pos) if not found else None
            if empty is None:
                raise LexError(f"unexpected text in a selector at offset {pos}")
            if name is None:
                raise LexError("empty selector {}")
            return SelectorSpan(name, name_end, open_at, empty.end() - 1, (), "", False)
        label, op, value, comma, close = m.groups()  # in _ITEM's order
        value_start, end = m.span(3)
        found.append(
            MatcherSpan(
                label if label[0] != '"' else decode_string(label),
                op,
                value[1:-1] if "\\" not in value else decode_string(value),
                m.start(1),
                m.start(2),
                value_start,
                end,
                value[0],
            )
        )
        if close is not None:
            return SelectorSpan(
                name,
                name_end,
                open_at,
                m.end() - 1,
                tuple(found),
                _separator(text, found),
                comma is not None,
            )
        if comma is None:
            raise LexError(f"expected ',' or '}}' in a selector at offset {m.end()}")
        pos = m.end()


def _separator(text: str, found: list[MatcherSpan]) -> str:
    if len(found) < 2:
        return ""
    sep = text[found[0].end : found[1].start]
    if sep in {", ", ","}:  # the usual ones
        return sep
    return sep if sep.strip() == "," and "\n" not in sep else ", "


def _skip_parens(sig: list[Token], i: int) -> int:
    depth = 0
    while i < len(sig):
        if sig[i].text == "(":
            depth += 1
        elif sig[i].text == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise LexError("unbalanced parentheses")


def _braces(
    text: str, sig: list[Token], i: int, name: str | None, name_end: int
) -> tuple[SelectorSpan, int]:
    open_tok = sig[i]
    i += 1
    found: list[MatcherSpan] = []
    trailing = False
    while True:
        if i >= len(sig):
            raise LexError("unterminated selector")
        tok = sig[i]
        if tok.text == "}":
            break
        if i + 2 >= len(sig):
            raise LexError("unterminated selector")
        label, op, val = tok, sig[i + 1], sig[i + 2]
        if label.kind not in ("ident", "str") or op.text not in ("=", "!=", "=~", "!~"):
            raise LexError(f"unexpected {tok.text!r} in a selector at offset {tok.start}")
        if val.kind != "str":
            raise LexError(f"expected a string after {op.text} at offset {val.start}")
        label_name = label.text if label.kind == "ident" else decode_string(label.text)
        found.append(
            MatcherSpan(
                label_name,
                op.text,
                decode_string(val.text),
                label.start,
                op.start,
                val.start,
                val.end,
                val.text[0],
            )
        )
        i += 3
        trailing = False
        if i < len(sig) and sig[i].text == ",":
            trailing = True
            i += 1
    close = sig[i].start
    if name is None and not found:
        raise LexError("empty selector {}")
    return (
        SelectorSpan(
            name, name_end, open_tok.start, close, tuple(found), _separator(text, found), trailing
        ),
        i + 1,
    )
