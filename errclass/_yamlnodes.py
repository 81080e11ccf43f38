"""Composed-YAML helpers shared by the render config checks (monitoring) and the
document views (migrate), which do not import each other."""

from __future__ import annotations

from typing import Any


def node_children(node: Any, yaml: Any) -> list[Any]:
    """The nodes directly under a composed YAML *node*: a mapping's keys and values, a
    sequence's items; a scalar has none."""
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
