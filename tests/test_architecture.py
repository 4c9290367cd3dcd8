"""The house rules of docs/ARCHITECTURE.md, checked from the source with `ast` (nothing is imported or run)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*sorted(ROOT.glob("*.py")), *sorted((ROOT / "models").rglob("*.py")), *sorted((ROOT / "demos").rglob("*.py")),
           *sorted((ROOT / "benchmarks").rglob("*.py")), *sorted((ROOT / "scripts").rglob("*.py"))]
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file (function-level imports count too), made absolute."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x` imports module x
    return found


def project_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in SOURCES}
    return {name: {other for other in imported_modules(path) if other in modules and other != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_resolve_to_project_modules():
    graph = project_graph()
    # `from .checkpoints import (...)` and `from . import hub` inside models/weights.py
    assert {"models.checkpoints", "models.hub"} <= graph["models.weights"]
    assert "models.checkpoints" in graph["models.hub"]


def test_no_import_cycle_between_project_modules():
    assert find_cycle(project_graph()) is None


def test_models_never_import_gradio_and_demos_do_no_tensor_maths():
    for path in SOURCES:
        imports = {name.split(".")[0] for name in imported_modules(path)}
        if module_name(path).startswith("models"):
            assert "gradio" not in imports, f"{path.relative_to(ROOT)} imports gradio"
        if module_name(path).startswith("demos"):
            assert "torch" not in imports, f"{path.relative_to(ROOT)} imports torch"


def test_families_never_import_a_tab_module():
    for name, deps in project_graph().items():
        if name.startswith("models.") and not name.startswith("models.tabs"):
            assert not [dep for dep in deps if dep.startswith("models.tabs.")], f"{name} imports a tab module"


@pytest.mark.parametrize("path", [p for p in SOURCES], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_is_over_the_limit(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES}: split it by job)"
