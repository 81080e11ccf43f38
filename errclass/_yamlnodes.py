"""Composed-YAML helpers shared by the render config checks (monitoring) and the
document views (migrate), which do not import each other."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def node_children(node: Any, yaml: Any) -> list[Any]:
    """The nodes directly under a composed YAML *node*: a mapping's keys and values, a
    sequence's items; a scalar has none."""
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def walk_nodes(
    roots: Iterable[Any], yaml: Any, recursive: Callable[[Any], Exception]
) -> Iterator[tuple[Any, list[Any] | None]]:
    """The composed YAML node graph under *roots*, depth first, each distinct node once
    (an alias is its anchor's very node): ``(node, None)`` on entering it, then
    ``(node, children)`` once every child is done, so a caller can check a node
    before its children and total them after. A node met again while it is entered
    contains itself: ``raise recursive(node)``. Iterative, and linear in the nodes
    the file spells out however often aliases repeat them."""
    done: set[int] = set()
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(r, False) for r in roots]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            active.discard(key)
            done.add(key)
            yield node, node_children(node, yaml)
            continue
        if key in done:
            continue
        if key in active:
            raise recursive(node)
        yield node, None
        active.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in node_children(node, yaml) if id(k) not in done)
