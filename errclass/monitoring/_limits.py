"""Hostile render configs: the bounds a config must keep, checked before anything slow
or recursive sees it (no recursion here: every walk is iterative and bounded).

A render config is a few kilobytes, a few levels deep, and its strings are names and
short texts; anything far outside that is refused with the field it is in.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from errclass._yamlnodes import walk_nodes

MAX_FILE_BYTES = 1 << 20  # a config is a few KB
MAX_DEPTH = 32  # tables in tables; the schema needs 4
MAX_NODES = 20_000  # values in the whole config, aliases expanded
MAX_STRING = 1_000  # characters in any one key or value (a metric name, a title, a URL)
MAX_DURATION_S = 10 * 365 * 86400  # 10y: Prometheus durations are int64 ms; no SLO is longer
MAX_DURATION_CHARS = 32
# tomllib takes time quadratic in the parts of one dotted key (100,000 parts: minutes):
# a config has a few dots (floats, URLs), so their count bounds that time (< 1 s).
MAX_TOML_DOTS = 4_096

_SURROGATE = re.compile("[\ud800-\udfff]")
_PROBE = "errclass_probe__"

Path_ = tuple[str | int, ...]


class LimitError(ValueError):
    """A bound broken at *path* (a tuple of keys and indexes)."""

    def __init__(self, path: Path_, message: str, mark: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.path, self.message, self.mark = path, message, mark  # mark: (line, column)


def string_problem(s: str) -> str | None:
    """Why *s* cannot be a config string (None: it can)."""
    if len(s) > MAX_STRING:
        return f"is {len(s):,} characters long; at most {MAX_STRING:,} are allowed"
    m = _SURROGATE.search(s)
    if m:
        return f"holds a lone surrogate (U+{ord(m.group()):04X}) at character {m.start()}, not text"
    return None


def check_data(data: Any, base: Path_ = ()) -> None:
    """Raise LimitError where *data* (parsed TOML/YAML, a mapping, flag values) is too
    deep, too large, recursive, or holds a string that is too long or not text."""
    seen = 0
    stack: list[tuple[Any, Path_, int]] = [(data, base, 0)]
    on_path: set[int] = set()  # containers above: a cycle is an error, not a hang
    while stack:
        value, path, depth = stack.pop()
        if value is _LEAVE:
            on_path.discard(path[0])
            continue
        seen += 1
        if seen > MAX_NODES:
            raise LimitError(path, f"the config has more than {MAX_NODES:,} values")
        if isinstance(value, str):
            why = string_problem(value)
            if why:
                raise LimitError(path, why)
            continue
        children = list(_children(value, path))
        if not children and not isinstance(value, Mapping | list | tuple):
            continue
        if depth >= MAX_DEPTH:
            raise LimitError(path, f"is nested more than {MAX_DEPTH} levels deep")
        if id(value) in on_path:
            raise LimitError(path, "contains itself (a recursive structure)")
        on_path.add(id(value))
        stack.append((_LEAVE, (id(value),), depth))
        stack.extend((child, p, depth + 1) for child, p in reversed(children))


_LEAVE = object()


def _children(value: Any, path: Path_) -> Iterator[tuple[Any, Path_]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and (why := string_problem(k)):
                raise LimitError((*path, k[:40]), f"key {why}")
            yield v, (*path, str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield v, (*path, i)


def check_yaml_nodes(root: Any) -> None:
    """Raise LimitError for a composed YAML node graph that is recursive (an alias to
    an enclosing node), expands past MAX_NODES values (an alias bomb) or MAX_DEPTH
    levels. Sizes are counted once per node, so a bomb is refused in linear time."""
    import yaml

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    for node, kids in walk_nodes((root,), yaml, _recursive):
        if kids is None:
            continue
        key = id(node)
        size[key] = 1 + sum(size[id(k)] for k in kids)
        depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
        if size[key] > MAX_NODES:
            why = f"aliases expand this node to more than {MAX_NODES:,} values"
            raise LimitError((), why, _mark(node))
        if depth[key] > MAX_DEPTH:
            raise LimitError((), f"nested more than {MAX_DEPTH} levels deep", _mark(node))


def _recursive(node: Any) -> LimitError:
    return LimitError((), "a recursive alias: a node contains itself", _mark(node))


def _mark(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def template_problem(template: str, fields: set[str]) -> str | None:
    """Why *template* is not a ``str.format`` pattern over only *fields*, each as a
    plain ``{name}`` (no index, attribute, conversion or format spec)."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        return f"bad pattern: {e}"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in fields:
            return (
                f"unknown placeholder {{{name}}}; use "
                + ", ".join(f"{{{f}}}" for f in sorted(fields))
                + " ({{ and }} for braces)"
            )
        if spec or conversion:
            return f"placeholder {{{name}}} must be plain, without !conversion or :format"
    try:
        template.format(**dict.fromkeys(fields, "x"))
    except (ValueError, KeyError, IndexError) as e:  # pragma: no cover - parse covers it
        return f"bad pattern: {e}"
    return None


def matcher_list_problem(metric: str, selector: str, parse: Callable[[str], Any]) -> str | None:
    """Why *selector* is not a plain PromQL matcher list: ``metric{<selector>}`` must
    parse to a vector selector whose braces end where ours do (a probe matcher put
    after the selector must survive; ``}`` or a ``#`` comment in it would cut it off)."""
    probe = f'{_PROBE}="1"'
    try:
        expr = parse(f"{metric}{{{selector}, {probe}}}")
    except ValueError as e:
        return f"{selector!r} is not a PromQL matcher list: {e}"
    if type(expr).__name__ != "VectorSelector" or getattr(expr, "name", None) != metric:
        return f"{selector!r} is not a PromQL matcher list (it makes {metric}{{...}} more)"
    matchers = list(getattr(expr.matchers, "matchers", []))
    if not matchers or matchers[-1].name != _PROBE:
        return f"{selector!r} is not a PromQL matcher list: it ends the braces itself"
    if any(m.name == _PROBE for m in matchers[:-1]):
        return f"{selector!r} uses the reserved label {_PROBE}"
    if getattr(expr, "offset", None) or getattr(expr, "at", None):
        return f"{selector!r} is not a PromQL matcher list (offset or @ after it)"
    return None


def toml_problem(text: str) -> str | None:
    """Why *text* is refused before tomllib reads it (None: it is not)."""
    dots = text.count(".")
    if dots > MAX_TOML_DOTS:
        return (
            f"has {dots:,} '.' characters; at most {MAX_TOML_DOTS:,} "
            "(dotted keys this deep are not a render config)"
        )
    return None


def check_duration_text(value: str) -> str | None:
    if len(value) > MAX_DURATION_CHARS:
        return f"{value[:20]!r}... is not a Prometheus duration like 5m, 1h or 30d"
    return None
