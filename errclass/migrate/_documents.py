"""Reading JSON and YAML files as *views*: structure for the format walkers, and the
exact source span of every string a walker turns into a site. Nothing is rewritten
through a serializer: edits go into the original text at these spans."""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

from errclass.migrate._composer import NodeError, check_nodes, composer
from errclass.migrate._sites import Site

# Keys whose string values may hold PromQL (located by span in JSON).
KEYS = ("expr", "query", "error_query", "total_query", "error_ratio_query")


# After a key's closing quote: the colon and the opening quote of a string value.
_TO_STRING = re.compile(r'\s*:\s*"')
_scan_string: Any = json.decoder.scanstring  # type: ignore[attr-defined]  # C: (value, end)


class DocumentError(ValueError):
    """The file is not valid JSON/YAML; the message names the position."""


class DuplicateKey(ValueError):
    pass


_LONG_NUMBER = re.compile(r"\d{4000,}")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key appears twice (json.loads keeps the last one
    silently; the span scan would find both)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateKey(k)
            seen.add(k)
    return out


class JsonView:
    """A parsed JSON document; spans come from a scan of the raw text."""

    style = "json"

    def __init__(self, text: str) -> None:
        self.text = text
        body = text[1:] if text.startswith("\ufeff") else text
        try:
            self.roots = [json.loads(body, object_pairs_hook=_unique)]
        except json.JSONDecodeError as e:
            raise DocumentError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        except RecursionError as e:
            raise DocumentError("invalid JSON: nested too deeply") from e
        except DuplicateKey as e:
            raise DocumentError(
                f"invalid JSON: the key {e.args[0]!r} appears twice in one object (loaders "
                "disagree on which one counts; keep one)"
            ) from e
        except ValueError as e:  # a number Python will not convert (over 4,300 digits)
            m = _LONG_NUMBER.search(body)
            if m is None:
                raise DocumentError(f"invalid JSON: {e}") from e
            line = body.count("\n", 0, m.start()) + 1
            raise DocumentError(
                f"invalid JSON at line {line}: a number of {len(m.group()):,} digits, more "
                "than Python reads (4,300)"
            ) from e
        # per key: the spans of its string values not taken yet, by value, in order
        self._spans: dict[str, dict[str, deque[tuple[int, int]]]] = {}

    def map(self, x: Any) -> dict[str, Any] | None:
        return x if isinstance(x, dict) else None

    def seq(self, x: Any) -> list[Any]:
        return x if isinstance(x, list) else []

    def string(self, x: Any) -> str | None:
        if type(x) is str:  # the common case first
            return x
        if isinstance(x, bool) or x is None:
            return None
        return x if isinstance(x, str) else str(x) if isinstance(x, int | float) else None

    def items(self, x: Any) -> list[tuple[str, Any]]:
        return list(x.items()) if isinstance(x, dict) else []

    def site(self, mapping: Any, key: str, location: str, **flags: bool) -> Site | None:
        value = mapping.get(key) if isinstance(mapping, dict) else None
        if not isinstance(value, str):
            return None
        span = self._take(key, value)
        if span is None:
            return None
        return Site(location, span[0], span[1], value, "json", **flags)

    def _take(self, key: str, value: str) -> tuple[int, int] | None:
        """The next unused span of ``"key": "value"`` in document order."""
        spans = self._spans.get(key)
        if spans is None:
            spans = self._spans[key] = self._scan(key)
        left = spans.get(value)
        return left.popleft() if left else None

    def _scan(self, key: str) -> dict[str, deque[tuple[int, int]]]:
        """Spans of every ``"key": "string"`` value, by the decoded string. The key is
        found by ``str.find`` and the string read by json's own C scanner: far fewer
        steps than a regular expression matching the whole token."""
        text = self.text
        needle = '"' + key + '"'
        find, to_string = text.find, _TO_STRING.match
        out: dict[str, deque[tuple[int, int]]] = {}
        at = find(needle)
        while at >= 0:
            m = to_string(text, at + len(needle))
            if m is None:  # not a key, or its value is not a string
                at = find(needle, at + 1)
                continue
            # After a key's closing quote (the document is valid JSON): a real string.
            start = m.end() - 1
            value, end = _scan_string(text, start + 1)
            # A key token starts at an unescaped quote; after an escaped one, what was
            # found is the tail of a longer key.
            back = at
            while back > 0 and text[back - 1] == "\\":
                back -= 1
            if not (at - back) % 2:
                left = out.get(value)
                if left is None:
                    left = out[value] = deque()
                left.append((start, end))
            at = find(needle, end)  # no key token starts inside the value
        return out


class YamlView:
    """Every document of a YAML stream, as composed nodes with source marks."""

    style = "yaml"

    def __init__(self, text: str) -> None:
        import yaml

        self.text = text
        self._yaml = yaml
        loader = composer()
        try:
            self.roots = [d for d in yaml.compose_all(text, Loader=loader) if d is not None]
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise DocumentError(f"invalid YAML{where}: {e.problem or e.context}") from e
        except yaml.YAMLError as e:
            raise DocumentError(f"invalid YAML: {e}") from e
        except UnicodeError as e:  # a lone surrogate, from a caller's str
            raise DocumentError(f"not valid text: {e}") from e
        except RecursionError as e:
            raise DocumentError("invalid YAML: nested too deeply") from e
        try:
            # no recursive alias, alias bomb or duplicate key (no anchor: keys only)
            check_nodes(self.roots, aliases="&" in text)
        except NodeError as e:
            raise DocumentError(f"invalid YAML at line {e.line} column {e.column}: {e}") from e
        self._seen: set[int] = set()
        self._maps: dict[int, dict[str, Any]] = {}  # by id: the nodes live as long as self
        self._bom = 1 if text.startswith("\ufeff") else 0  # YAML's marks do not count it

    def map(self, x: Any) -> dict[str, Any] | None:
        if not isinstance(x, self._yaml.MappingNode):
            return None
        out = self._maps.get(id(x))  # walkers ask again for the mapping of a site
        if out is None:
            out = self._maps[id(x)] = {}
            for k, v in x.value:
                if isinstance(k, self._yaml.ScalarNode):
                    out.setdefault(k.value, v)
        return out

    def seq(self, x: Any) -> list[Any]:
        return list(x.value) if isinstance(x, self._yaml.SequenceNode) else []

    def string(self, x: Any) -> str | None:
        return str(x.value) if isinstance(x, self._yaml.ScalarNode) else None

    def items(self, x: Any) -> list[tuple[str, Any]]:
        m = self.map(x)
        return list(m.items()) if m else []

    def site(self, mapping: Any, key: str, location: str, **flags: bool) -> Site | None:
        m = mapping if type(mapping) is dict else self.map(mapping)  # a node, or its map()
        node = m.get(key) if m else None
        if not isinstance(node, self._yaml.ScalarNode) or id(node) in self._seen:
            return None
        if node.tag not in ("", "!", "tag:yaml.org,2002:str"):
            return None
        self._seen.add(id(node))
        style = node.style or ""
        start, end = node.start_mark.index + self._bom, node.end_mark.index + self._bom
        if style in ("'", '"'):  # YAML marks the node from its anchor or tag, if any
            start = self.text.find(style, start, end)
        return Site(location, start, end, node.value, style, **flags)


View = JsonView | YamlView


def load(text: str, kind: str) -> View:
    """A view of *text* read as *kind* ("json" or "yaml")."""
    return JsonView(text) if kind == "json" else YamlView(text)
