"""The tools' layout (errclass/monitoring, errclass/migrate), read from the source: no
import cycles between their modules (lazy imports included), no private name used
across modules, and nothing of the core imported (only the neutral ``errclass._atomic``)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

PACKAGES = ("errclass.monitoring", "errclass.migrate")
SHARED = frozenset(["errclass._atomic", "errclass._yamlnodes"])  # tool helpers


def _modules() -> dict[str, ast.Module]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / Path(*pkg.split("."))).glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


MODULES = _modules()


def _imports(name: str, tree: ast.Module) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import in *tree*."""
    pkg = name if name in PACKAGES else name.rpartition(".")[0]
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = f"{pkg}.{node.module}" if node.level and node.module else node.module
            mod = pkg if node.level and not node.module else base or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((sub, None) if sub in MODULES or sub in SHARED else (mod, a.name))
    return out


def _graph() -> dict[str, set[str]]:
    return {
        name: {m for m, _ in _imports(name, tree) if m in MODULES and m != name}
        for name, tree in MODULES.items()
    }


def test_the_tools_have_no_import_cycles() -> None:
    graph = _graph()
    cycles: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.add(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif len(path) < len(graph):
                visit(nxt, [*path, nxt])

    for start in graph:
        visit(start, [start])
    assert sorted(cycles) == []


def _own_private(tree: ast.Module) -> set[str]:
    """Private attribute names the module itself defines (class fields, attributes it
    assigns, names it passes to setattr), which its own functions may use."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                target = item.target if isinstance(item, ast.AnnAssign) else None
                if isinstance(target, ast.Name):
                    out.add(target.id)
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    out.add(item.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    return {n for n in out if n.startswith("_")}


def test_no_private_name_crosses_a_module() -> None:
    crossing = []
    for name, tree in MODULES.items():
        for mod, taken in _imports(name, tree):
            if taken is not None and taken.startswith("_") and mod != "__future__":
                crossing.append(f"{name}: from {mod} import {taken}")
        own = _own_private(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in own
            ):
                crossing.append(f"{name}: {ast.unparse(node)}")
    assert crossing == []


def test_the_tools_import_nothing_of_the_core() -> None:
    core = [
        f"{name}: {mod}"
        for name, tree in MODULES.items()
        for mod, _ in _imports(name, tree)
        if mod.startswith("errclass") and not mod.startswith(PACKAGES) and mod not in SHARED
    ]
    assert core == []
