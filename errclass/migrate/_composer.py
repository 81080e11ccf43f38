"""The YAML loader migrate reads with, shared by the document views and the read-back
check of edited literals (so neither imports the other)."""

from __future__ import annotations

import functools
from typing import Any

from errclass._yamlnodes import walk_nodes


@functools.lru_cache(maxsize=1)
def composer() -> Any:
    """A loader that only composes: no implicit typing (a scalar's tag stays empty unless
    the file spells one), which is all locating strings needs, and faster."""
    import yaml

    base = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

    class Composer(base):  # type: ignore[misc, valid-type]
        # The composer asks the resolver three times per node (descend, resolve,
        # ascend). ``"".format`` takes any positional arguments and returns "", in C:
        # no Python frame per node (a tenth of composing a large rule file), the same
        # result as Python methods returning "" and keeping no path state.
        resolve = descend_resolver = ascend_resolver = "".format

    return Composer


#: Values a walk may visit once aliases are expanded: this many, or twice the nodes the
#: file spells out, whichever is more (a few anchors reused a few times are fine; an
#: alias bomb, 10^8 panels from a kilobyte, is refused before any walk starts).
MAX_EXPANDED = 1_000_000


class NodeError(ValueError):
    """A composed YAML document errclass refuses to walk: ``line``/``column`` where."""

    def __init__(self, message: str, node: Any) -> None:
        super().__init__(message)
        self.line, self.column = node.start_mark.line + 1, node.start_mark.column + 1


def check_nodes(roots: list[Any], *, aliases: bool = True) -> None:
    """Raise NodeError for a recursive alias (a node that contains itself), for aliases
    that expand past the limit, and for a mapping with the same key twice (loaders
    disagree on which one counts, so an edit could go into the one that is dropped).
    Iterative and linear in the nodes the file spells out.

    *aliases* False: the caller knows the text has no ``&`` at all, so no anchor, so no
    alias (an alias of an anchor not defined before it does not compose): every node is
    its own, nothing can contain itself or expand, and only keys are left to check."""
    import yaml

    if not aliases:
        _check_keys(roots, yaml)
        return
    size: dict[int, int] = {}
    for node, kids in walk_nodes(roots, yaml, _recursive):
        if kids is not None:
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
        elif isinstance(node, yaml.MappingNode):
            _unique_keys(node, yaml)
    limit = max(MAX_EXPANDED, 2 * len(size))
    for r in roots:
        if size[id(r)] > limit:
            raise NodeError(f"aliases expand this document to more than {limit:,} values", r)


def _recursive(node: Any) -> NodeError:
    return NodeError("a recursive alias: a node contains itself", node)


def _unique_keys(node: Any, yaml: Any) -> None:
    seen: set[str] = set()
    for k, _ in node.value:
        if not isinstance(k, yaml.ScalarNode) or k.value == "<<":  # merge keys may repeat
            continue
        if k.value in seen:
            raise NodeError(f"the key {k.value!r} appears twice in one mapping", k)
        seen.add(k.value)


def _check_keys(roots: list[Any], yaml: Any) -> None:
    """The duplicate-key check of a tree without aliases, in one tight walk: a mapping's
    scalar keys are compared as a set, and only one with a repeat (maybe a ``<<`` merge
    key, which may repeat) or a key that is not a scalar is read key by key."""
    mapping, scalar = yaml.MappingNode, yaml.ScalarNode
    stack = [r for r in roots if type(r) is not scalar]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is not mapping:
            stack.extend([v for v in node.value if type(v) is not scalar])
            continue
        pairs = node.value
        keys = {k.value for k, _ in pairs if type(k) is scalar}
        if len(keys) != len(pairs):
            _unique_keys(node, yaml)
            stack.extend([k for k, _ in pairs if type(k) is not scalar])
        for _, v in pairs:
            if type(v) is not scalar:
                push(v)
