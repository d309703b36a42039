"""The layers of docs/architecture.md, checked from the source: `passes/` imports nothing of ours, `app/` never
imports `workers/` (only the entry points wire them together), and no module imports itself back through
others. A late (function-level) import cannot hide a violation: every import counts."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("passes", "app", "workers")
# What each package may import of ours; entry points (the CLI) wire app and workers together.
ALLOWED = {"passes": {"passes"}, "app": {"passes", "app"}, "workers": {"passes", "app", "workers"}}
ENTRY_POINTS = {"app.cli"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports, at any depth of its code."""
    imported = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                imported.add(target)
    return imported


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_each_package_imports_only_the_layers_below_it():
    upward = [f"{module} imports {target}" for module, targets in _graph().items() if module not in ENTRY_POINTS
              for target in targets if target.split(".")[0] not in ALLOWED[module.split(".")[0]]]
    assert upward == []


def test_no_module_imports_itself_back_through_others():
    graph, cycles, state = _graph(), [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
