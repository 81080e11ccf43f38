"""A site is one PromQL expression inside a file: where its string literal sits in the
raw text, its decoded value, and how to turn edits of the value into edits of the text."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from errclass.migrate._composer import composer

Edit = tuple[int, int, str]

# The escaping of json.dumps (non-ASCII kept): one character at a time, so the encoding of
# a prefix of a value is a prefix of the value's encoding.
_encode_json: Callable[[str], str] = json.encoder.encode_basestring
_scan_json_string: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

# Grafana template queries that wrap PromQL: query_result(EXPR), label_values(SELECTOR, label).
_QUERY_RESULT = re.compile(r"\s*query_result\s*\((?P<e>.*)\)\s*", re.DOTALL)
_LABEL_VALUES = re.compile(
    r"\s*label_values\s*\((?P<e>.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", re.DOTALL
)
_GRAFANA_FUNC = re.compile(r"\s*(label_values|label_names|metrics|query_result)\s*\(")


class EncodeError(ValueError):
    """An edit cannot be written back into this kind of string literal."""


@dataclass(slots=True)
class Site:
    """One expression: the scalar's raw span [start, end) and its decoded value."""

    location: str
    start: int
    end: int
    value: str
    style: str  # "json" or a YAML scalar style: "" (plain), "'", '"', "|", ">"
    alert: bool = False
    threshold_elsewhere: bool = False  # Grafana-managed: the threshold is its own query
    ratio: bool = False  # one side of a ratio kept in two places (Sloth)
    template: bool = False  # a Grafana templating query: may wrap PromQL in a function
    # "json" or "yaml": the value is a whole document of that kind (a ConfigMap's data),
    # set by the walker that found it
    document: str = field(default="", init=False)
    sub: tuple[int, int] | None = field(init=False)  # the PromQL part; None: no PromQL

    def __post_init__(self) -> None:
        self.sub = template_query_span(self.value) if self.template else (0, len(self.value))

    def within(self, outer: Site, place: Callable[[int], int]) -> Site:
        """This site of a document embedded in *outer*'s string, placed in the file by
        *place* (a value index of *outer* to its offset in the file): for reports only."""
        return Site(
            f"{outer.location}: {self.location}",
            place(self.start),
            place(self.end),
            self.value,
            self.style,
            self.alert,
            self.threshold_elsewhere,
            self.ratio,
            self.template,
        )

    @property
    def series(self) -> bool:
        """Are the result's series used one by one? (label_values only lists values.)"""
        return not (self.template and self.value.lstrip().startswith("label_values"))

    @property
    def expr(self) -> str | None:
        if self.sub is None:
            return None
        return self.value[self.sub[0] : self.sub[1]]


def template_query_span(value: str) -> tuple[int, int] | None:
    """The PromQL inside a Grafana variable query, or None if there is none."""
    for rx in (_QUERY_RESULT, _LABEL_VALUES):
        m = rx.fullmatch(value)
        if m:
            return m.span("e")
    if _GRAFANA_FUNC.match(value):
        return None
    return (0, len(value))


def raw_edits(text: str, site: Site, edits: list[Edit]) -> list[Edit]:
    """Edits of the site's value (relative to ``site.expr``) as edits of the raw text."""
    base = (site.sub or (0, 0))[0]
    offsets = _offsets(text, site)
    out = []
    for start, end, new in edits:
        out.append((offsets(base + start), offsets(base + end), _encode(new, site, text)))
    return out


def value_offsets(text: str, site: Site) -> Callable[[int], int]:
    """A decoded index into the site's value, as an offset in the raw *text*."""
    return _offsets(text, site)


def _offsets(text: str, site: Site) -> Callable[[int], int]:
    raw = text[site.start : site.end]
    if site.style == "json":
        if raw == _encode_json(site.value):
            return _json_prefix(site.value, site.start)
        return _escapes(_JSON_ESCAPE, raw[1:-1], site.start + 1)
    if site.style in ("", "'", '"'):
        inner = 0 if site.style == "" else 1
        if raw[inner : len(raw) - inner] == site.value:
            return _shift(site.start + inner)
        if site.style == '"' and "\n" not in raw:
            if raw == _encode_json(site.value):  # YAML reads JSON's escapes alike
                return _json_prefix(site.value, site.start)
            return _escapes(_YAML_ESCAPE, raw[1:-1], site.start + 1)
        if inner:  # a quoted scalar over several lines: folded, escaped
            return _flow(text, site.start, site.end, site.style, site.value).__getitem__
        return _align(text, site.start, site.end, site.value).__getitem__
    # block scalar: content starts after the header line
    nl = text.find("\n", site.start, site.end)
    if nl < 0:
        raise EncodeError("a block scalar without content")
    if site.style == "|":
        return _align_lines(text, nl + 1, site.end, site.value)
    return _align(text, nl + 1, site.end, site.value).__getitem__


def _json_prefix(value: str, start: int) -> Callable[[int], int]:
    """Offsets in a JSON string token written exactly as json.dumps writes *value*: the
    raw text before a decoded index is the encoding of the value up to it (found in C,
    where scanning the escapes in Python would take a step per escape)."""
    return lambda i: start + len(_encode_json(value[:i])) - 1  # minus its closing quote


def _shift(by: int) -> Callable[[int], int]:
    return lambda i: by + i


_JSON_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[0-9a-fA-F]{4}|\\u[0-9a-fA-F]{4}|\\.")
_YAML_ESCAPE = re.compile(r"\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|\\.")


def _escapes(pattern: re.Pattern[str], body: str, base: int) -> Callable[[int], int]:
    """Offsets in a one-line escaped string body: each escape sequence decodes to one
    character, so a decoded index moves by the extra length of the escapes before it."""
    if "\\" not in body:
        return _shift(base)
    decoded_at: list[int] = []
    extra_before: list[int] = []
    extra = 0
    for m in pattern.finditer(body):
        decoded_at.append(m.start() - extra)
        extra_before.append(extra)
        extra += len(m.group()) - 1
    total = extra

    def offset(i: int) -> int:
        k = bisect.bisect_left(decoded_at, i)
        return base + i + (extra_before[k] if k < len(decoded_at) else total)

    return offset


def _align(text: str, start: int, end: int, value: str) -> list[int]:
    """Map each character of *value* to its place in text[start:end], skipping what YAML
    adds around it (indentation, escapes, folds). Verified afterwards by re-parsing."""
    table: list[int] = []
    r = start
    for c in value:
        # A line break folded into a space: an edit there goes before the break, not into
        # the next line's indentation.
        folded = c == " " and r < end and text[r] in "\r\n"
        j = r if folded else text.find(c, r, end)
        if j < 0:
            raise EncodeError("cannot align the scalar's value with its source text")
        table.append(j)
        r = j + 1
    table.append(r)
    return table


_YAML_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
    "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_YAML_CODES = {"x": 2, "u": 4, "U": 8}


def _flow(text: str, start: int, end: int, quote: str, value: str) -> list[int]:
    """Offsets of a quoted scalar over several lines, decoded the way YAML reads it: each
    value character's place in the text (a space folded from a line break: the break),
    and the closing quote for the end. A line break is "\\n", "\\r\\n" or "\\r", as
    YAML reads each as one "\\n"."""
    table: list[int] = []
    out: list[str] = []
    i, stop = start + 1, end - 1
    while i < stop:
        c = text[i]
        if c == quote == "'" and text.startswith("''", i):
            table.append(i)
            out.append("'")
            i += 2
        elif c == "\\" and quote == '"':
            i = _escape(text, i, table, out)
        elif c in " \t\r\n":
            i = _fold(text, i, stop, table, out)
        else:
            table.append(i)
            out.append(c)
            i += 1
    table.append(stop)
    if "".join(out) != value:
        raise EncodeError("cannot align the scalar's value with its source text")
    return table


def _break(text: str, j: int) -> int:
    """The length of the line break at *j* ("\\r\\n": 2; "\\n" or "\\r": 1), or 0."""
    c = text[j : j + 1]
    if c == "\n":
        return 1
    if c == "\r":
        return 2 if text.startswith("\n", j + 1) else 1
    return 0


def _escape(text: str, i: int, table: list[int], out: list[str]) -> int:
    e = text[i + 1]
    n = _break(text, i + 1)
    if n:  # an escaped line break: the lines join, the next one's indent dropped
        j = i + 1 + n
        while text[j] in " \t":
            j += 1
        return j
    table.append(i)
    if e in _YAML_CODES:
        n = _YAML_CODES[e]
        out.append(chr(int(text[i + 2 : i + 2 + n], 16)))
        return i + 2 + n
    if e not in _YAML_ESCAPES:
        raise EncodeError(f"unknown escape \\{e}")
    out.append(_YAML_ESCAPES[e])
    return i + 2


def _fold(text: str, i: int, stop: int, table: list[int], out: list[str]) -> int:
    """White space, and line folding: a line break (trailing white space dropped) reads
    as one space, or as the empty lines that follow it; leading white space dropped.
    A value character read from a line break is placed at its first byte (the "\\r" of
    a "\\r\\n"), so that an edit there goes before the whole break."""
    j = i
    while j < stop and text[j] in " \t":
        j += 1
    n = _break(text, j) if j < stop else 0
    if not n:  # spaces within a line
        table.extend(range(i, j))
        out.append(text[i:j])
        return j
    brk = j
    breaks = 0
    j += n
    while j < stop:
        if text[j] in " \t":
            j += 1
            continue
        n = _break(text, j)
        if not n:
            break
        table.append(j)
        breaks += 1
        j += n
    if breaks:
        out.append("\n" * breaks)
    else:
        table.append(brk)
        out.append(" ")
    return j


def _align_lines(text: str, start: int, end: int, value: str) -> Callable[[int], int]:
    """Offsets in a literal block scalar, a line at a time: each value line is its raw
    line without the indentation."""
    firsts: list[int] = []  # where each value line starts in the value
    places: list[int] = []  # and in the text
    breaks: list[int] = []  # the line break after it, in the text
    lines = value.split("\n")
    r, v = start, 0
    for n, line in enumerate(lines):
        if n:  # the line break before this line
            j = text.find("\n", r, end)
            if j < 0:
                raise EncodeError("cannot align the scalar's value with its source text")
            breaks.append(j)
            r = j + 1
        if line:
            j = text.find(line, r, end)
            if j < 0 or text[r:j].strip(" "):
                raise EncodeError("cannot align the scalar's value with its source text")
            r = j
        firsts.append(v)
        places.append(r)
        r += len(line)
        v += len(line) + 1
    last = len(lines) - 1

    def offset(i: int) -> int:
        k = bisect.bisect_right(firsts, i) - 1
        col = i - firsts[k]
        if col < len(lines[k]) or k == last:
            return places[k] + col
        j = breaks[k]  # the line break itself: "\n", or "\r\n" where YAML read one "\n"
        return j - 1 if text[j - 1] == "\r" else j

    return offset


def _encode(new: str, site: Site, text: str) -> str:
    if not new:
        return new
    if site.style == "json":
        out = _encode_json(new)[1:-1]
        raw = text[site.start : site.end]
        for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            if esc in raw:
                out = out.replace(ch, esc)
        return out
    if "\n" in new:
        raise EncodeError("an edit with a line break")
    if site.style == '"':
        return new.replace("\\", "\\\\").replace('"', '\\"')
    if site.style == "'":
        return new.replace("'", "''")
    return new


def reads_back(text: str, literals: list[tuple[Site, str, str]]) -> bool:
    """Does each *new_raw*, put where its site's literal was, read as *expected*?
    *literals*: (site, new_raw, expected) for every edited site of one file.

    JSON: a string token replaced by a string token leaves the document's structure as it
    was, so decoding the token alone is the whole answer. YAML: each scalar is re-read as
    the value of a top-level key with the rest of its line, all in one small document.
    Unless it is a quoted scalar on one line (whose value depends on its own text only),
    its original is read the same way beside it and must read back as its own value: if
    not (flow context, indentation indicators), the answer is False and the caller
    re-reads the whole file instead.
    """
    if not literals or literals[0][0].style == "json":
        return all(_json_reads_back(new_raw, expected) for _, new_raw, expected in literals)
    import yaml

    lines, keys = [], []
    for k, (site, new_raw, _) in enumerate(literals):
        raw = text[site.start : site.end]
        rest = ""
        if not raw.endswith("\n"):
            eol = text.find("\n", site.end)
            rest = text[site.end : eol if eol >= 0 else len(text)]
        if not _quoted_line(site, raw):
            keys.append(f"o{k}")
            lines.append(_line(keys[-1], raw, rest))
        keys.append(f"n{k}")
        lines.append(_line(keys[-1], new_raw, rest))
    try:
        node = yaml.compose("".join(lines), Loader=composer())
    except yaml.YAMLError:
        return False
    if not isinstance(node, yaml.MappingNode) or [k.value for k, _ in node.value] != keys:
        return False
    read = {}
    for key, value in node.value:
        if not isinstance(value, yaml.ScalarNode):
            return False
        read[key.value] = value.value
    for k, (site, _, expected) in enumerate(literals):
        if read.get(f"o{k}", site.value) != site.value or read.get(f"n{k}") != expected:
            return False
    return True


def _quoted_line(site: Site, raw: str) -> bool:
    return (
        site.style in ("'", '"')
        and len(raw) >= 2
        and raw[0] == raw[-1] == site.style
        and "\n" not in raw
    )


def _json_reads_back(new_raw: str, expected: str) -> bool:
    """Is *new_raw* one JSON string token, and its value *expected*? Read by the C string
    scanner json.loads uses (strict, as json.loads is), without its Python layers."""
    if len(new_raw) < 2 or new_raw[0] != '"' or new_raw[-1] != '"':
        return False
    try:
        value, end = _scan_json_string(new_raw, 1)
    except ValueError:
        return False
    return end == len(new_raw) and value == expected


def _line(key: str, raw: str, rest: str) -> str:
    out = f"{key}: {raw}{rest}"
    return out if out.endswith("\n") else out + "\n"
