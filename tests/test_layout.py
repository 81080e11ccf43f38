"""The package's import graph: no cycles, and no private names taken from another module.

Read from the source with ``ast`` (every import, also those inside functions;
not those under ``if TYPE_CHECKING:``), so a cycle that only works because of
definition order or a lazy import is found too.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import errclass

PACKAGE = Path(errclass.__file__).parent

# Being fixed elsewhere (issue 11, migrate/): remove an entry once its cycle is gone.
KNOWN_CYCLES: set[frozenset[str]] = set()


@dataclass
class Graph:
    modules: set[str] = field(default_factory=set)
    edges: dict[str, set[str]] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)  # "importer: what it took"


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(name: str, root: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts))} - {root}


def build(root: Path) -> Graph:
    """The import graph of the package at *root* (a directory with ``__init__.py``)."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph = Graph(modules=set(files))
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        targets: set[str] = set()
        module_aliases: set[str] = set()  # local names bound to a package module
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in files:
                        targets.add(alias.name)
                        if alias.asname:
                            module_aliases.add(alias.asname)
                continue
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                up = here[: len(here) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            if base not in files:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in files:
                    targets.add(sub)
                    module_aliases.add(alias.asname or alias.name)
                else:
                    targets.add(base)
                    if _is_private(alias.name) and base != name:
                        graph.private.append(f"{name}: from {base} import {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and _is_private(node.attr)
            ):
                graph.private.append(f"{name}: {node.value.id}.{node.attr}")
        edges = graph.edges.setdefault(name, set())
        for target in targets - {name}:
            # Importing a.b.c runs a/b/__init__ first, unless the importer is inside a.b.
            edges.add(target)
            edges.update(_ancestors(target, root.name) - _ancestors(name, root.name) - {name})
    return graph


def cycles(graph: Graph) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan; the
    recursion is as deep as the longest import chain, a few dozen modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph.modules):
        if v not in index:
            connect(v)
    return found


def test_errclass_has_no_import_cycles_and_no_private_names_across_modules() -> None:
    graph = build(PACKAGE)
    # The graph is really the package's: these edges exist, so an empty scan cannot pass.
    assert len(graph.modules) > 30
    assert "errclass._policy" in graph.edges["errclass._record"]
    assert "errclass._sinks._failures" in graph.edges["errclass._record"]
    assert "errclass._sinks" in graph.edges["errclass._record"]  # its __init__ runs first
    assert "errclass._rule" in graph.edges["errclass.rules"]
    found = set(cycles(graph))
    assert found - KNOWN_CYCLES == set()
    assert graph.private == []


def test_core_does_not_import_a_sink_backend_module() -> None:
    graph = build(PACKAGE)
    for core in ("errclass._record", "errclass._policy", "errclass._rule", "errclass._scope"):
        assert "errclass._sinks._prometheus" not in graph.edges[core], core


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A package with one violation of each kind, and lookalikes that are fine."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import public\n",
        # a -> b at import time; b -> a only inside a function: still a cycle.
        "a.py": "from . import b\n\ndef public():\n    return b.helper()\n",
        "b.py": "def helper():\n    from .a import public\n    return public\n",
        # A private name taken from a sibling, and one read through a module alias.
        "c.py": "from .a import _secret\nfrom . import d\n\nx = d._hidden\ny = d.shown\n",
        "d.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .c import x  # type-only: no edge\n"
            "shown = 1\n_hidden = 2\n__all__ = ['shown']\n"
        ),
        # A sibling import inside a subpackage is no cycle with its __init__.
        "sub/__init__.py": "from .one import ONE\n",
        "sub/one.py": "from .two import TWO\nONE = TWO\n",
        "sub/two.py": "from .. import d\nTWO = d.shown\n",
        # Importing sub.one from outside runs sub/__init__ too.
        "e.py": "from .sub.one import ONE\n",
    }
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


def test_checker_finds_planted_violations(planted: Path) -> None:
    graph = build(planted)
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b"})]
    assert sorted(graph.private) == ["pkg.c: d._hidden", "pkg.c: from pkg.a import _secret"]
    assert graph.edges["pkg.e"] == {"pkg.sub", "pkg.sub.one"}
    assert "pkg.c" not in graph.edges["pkg.d"]
    assert graph.edges["pkg.sub.one"] == {"pkg.sub.two"}
