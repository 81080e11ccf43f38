"""A site is one PromQL expression inside a file: where its string literal sits in the
raw text, its decoded value, and how to turn edits of the value into edits of the text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

Edit = tuple[int, int, str]

# Grafana template queries that wrap PromQL: query_result(EXPR), label_values(SELECTOR, label).
_QUERY_RESULT = re.compile(r"\s*query_result\s*\((?P<e>.*)\)\s*", re.DOTALL)
_LABEL_VALUES = re.compile(
    r"\s*label_values\s*\((?P<e>.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", re.DOTALL
)
_GRAFANA_FUNC = re.compile(r"\s*(label_values|label_names|metrics|query_result)\s*\(")


class EncodeError(ValueError):
    """An edit cannot be written back into this kind of string literal."""


@dataclass
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
    sub: tuple[int, int] | None = field(init=False)  # the PromQL part; None: no PromQL

    def __post_init__(self) -> None:
        self.sub = template_query_span(self.value) if self.template else (0, len(self.value))

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


def _offsets(text: str, site: Site) -> _Map:
    raw = text[site.start : site.end]
    if site.style == "json":
        body = raw[1:-1]
        if "\\" not in body:
            return _Shift(site.start + 1)
        return _Table(_json_table(body, site.start + 1))
    if site.style in ("", "'", '"'):
        inner = 0 if site.style == "" else 1
        if raw[inner : len(raw) - inner] == site.value:
            return _Shift(site.start + inner)
        if site.style == '"' and "\n" not in raw:
            return _Table(_chunk_table(_YAML_DQ_CHUNK, raw[1:-1], site.start + 1))
        return _Table(_align(text, site.start + inner, site.end - inner, site.value))
    # block scalar: content starts after the header line
    nl = text.find("\n", site.start, site.end)
    if nl < 0:
        raise EncodeError("a block scalar without content")
    if site.style == "|":
        return _Table(_align_lines(text, nl + 1, site.end, site.value))
    return _Table(_align(text, nl + 1, site.end, site.value))


class _Map:
    def __call__(self, i: int) -> int:
        raise NotImplementedError


class _Shift(_Map):
    def __init__(self, by: int) -> None:
        self.by = by

    def __call__(self, i: int) -> int:
        return self.by + i


class _Table(_Map):
    def __init__(self, table: list[int]) -> None:
        self.table = table

    def __call__(self, i: int) -> int:
        return self.table[i]


_JSON_CHUNK = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[0-9a-fA-F]{4}|\\u[0-9a-fA-F]{4}|\\.|[^\\]+"
)


_YAML_DQ_CHUNK = re.compile(r"\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|\\.|[^\\]+")


def _json_table(body: str, base: int) -> list[int]:
    return _chunk_table(_JSON_CHUNK, body, base)


def _chunk_table(chunks: re.Pattern[str], body: str, base: int) -> list[int]:
    """Offsets of each decoded character of a one-line escaped string body: an escape
    sequence decodes to one character (verified afterwards by re-reading)."""
    table: list[int] = []
    for m in chunks.finditer(body):
        chunk = m.group()
        if chunk.startswith("\\"):
            table.append(base + m.start())
        else:
            table.extend(range(base + m.start(), base + m.end()))
    table.append(base + len(body))
    return table


def _align(text: str, start: int, end: int, value: str) -> list[int]:
    """Map each character of *value* to its place in text[start:end], skipping what YAML
    adds around it (indentation, escapes, folds). Verified afterwards by re-parsing."""
    table: list[int] = []
    r = start
    for c in value:
        j = text.find(c, r, end)
        if j < 0:
            raise EncodeError("cannot align the scalar's value with its source text")
        table.append(j)
        r = j + 1
    table.append(r)
    return table


def _align_lines(text: str, start: int, end: int, value: str) -> list[int]:
    """_align for a literal block scalar, a line at a time: each value line is its raw
    line without the indentation."""
    table: list[int] = []
    r = start
    for n, line in enumerate(value.split("\n")):
        if n:  # the line break before this line
            j = text.find("\n", r, end)
            if j < 0:
                raise EncodeError("cannot align the scalar's value with its source text")
            table.append(j)
            r = j + 1
        if line:
            j = text.find(line, r, end)
            if j < 0 or text[r:j].strip(" "):
                raise EncodeError("cannot align the scalar's value with its source text")
            table.extend(range(j, j + len(line)))
            r = j + len(line)
    table.append(r)
    return table


def _encode(new: str, site: Site, text: str) -> str:
    if not new:
        return new
    if site.style == "json":
        out = json.dumps(new, ensure_ascii=False)[1:-1]
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


def reads_back(text: str, site: Site, new_raw: str, expected: str) -> bool | None:
    """Does *new_raw*, put where the site's literal was, read as *expected*?

    JSON: a string token replaced by a string token leaves the document's structure as it
    was, so decoding the token alone is the whole answer. YAML: the scalar is re-read as
    the value of a top-level key with the rest of its line; if the original does not
    read back as its own value that way (flow context, indentation indicators), the
    answer is None and the caller re-reads the whole file instead.
    """
    if site.style == "json":
        try:
            value = json.loads(new_raw)
        except ValueError:
            return False
        return new_raw[:1] == new_raw[-1:] == '"' and value == expected
    import yaml

    from errclass.migrate._documents import composer

    old_raw = text[site.start : site.end]
    rest = ""
    if not old_raw.endswith("\n"):
        eol = text.find("\n", site.end)
        rest = text[site.end : eol if eol >= 0 else len(text)]

    def read(raw: str) -> str | None:
        try:
            node = yaml.compose("k: " + raw + rest, Loader=composer())
        except yaml.YAMLError:
            return None
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            return None
        key, value = node.value[0]
        if key.value != "k" or not isinstance(value, yaml.ScalarNode):
            return None
        return str(value.value)

    if read(old_raw) != site.value:
        return None
    return read(new_raw) == expected
