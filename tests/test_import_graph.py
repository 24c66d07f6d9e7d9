"""The project's modules import each other one way only, and at the top of the file.

A function-level import of a project module is how a cycle hides: it works until someone moves
the import up. These tests read every module's source (migrations aside), so a new cycle or a
new hidden import fails here rather than at start-up in production.
"""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "accounts",
    "billing",
    "catalog",
    "devtools",
    "docs_site",
    "eco",
    "keys",
    "lowrouter",
    "routing",
)


def project_modules() -> dict[str, Path]:
    found = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            if "migrations" in relative.parts:
                continue
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            found[".".join(parts)] = path
    return found


MODULES = project_modules()


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement loads (``from catalog import fx`` loads
    ``catalog.fx``; ``from catalog.fx import multiplier`` loads ``catalog.fx``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level or not node.module:
        names = []
    else:
        names = [node.module]
        names += [f"{node.module}.{alias.name}" for alias in node.names]
    return [n for n in names if n in MODULES]


def top_level_imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(imported_names(node))
    return found


def nested_imports(tree: ast.Module) -> list[str]:
    top = {id(node) for node in tree.body}
    return [
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top
        for name in imported_names(node)
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return []


def parsed() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def test_no_project_module_is_imported_inside_a_function() -> None:
    offenders = [
        f"{module} imports {name}"
        for module, tree in parsed().items()
        for name in nested_imports(tree)
    ]
    assert offenders == []


def test_the_project_modules_import_each_other_without_a_cycle() -> None:
    graph = {module: top_level_imports(tree) - {module} for module, tree in parsed().items()}
    # A package imports its own __init__ first; that edge is not a dependency of the code.
    for module in graph:
        graph[module] -= {m for m in graph[module] if module.startswith(m + ".")}
    assert find_cycle(graph) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    graph = {"a.fx": {"a.snapshot"}, "a.snapshot": {"a.pricing"}, "a.pricing": {"a.fx"}}
    assert find_cycle(graph) == ["a.fx", "a.snapshot", "a.pricing", "a.fx"]
    assert find_cycle({"a.x": {"a.y"}, "a.y": set()}) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("settings")))
def test_every_project_module_imports_on_its_own(module: str) -> None:
    assert importlib.import_module(module).__name__ == module
