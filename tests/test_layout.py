"""The package's layout is its architecture: imports only go down the layers, and no module imports itself
back through others (a circle). Read from the source (every import, also those inside functions), so a
new arrow running up or a new circle fails here before anyone has to find it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pepr_utils"

#: Bottom to top. A unit is a top-level module or a sub-package of pepr_utils; a unit may import from its own
#: modules and from units on lower layers, never from its own layer or above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("settings", "fileio", "face", "resources", "devices", "provenance"),
    ("score", "data", "models", "meter"),
    ("params", "paper"),
    ("records",),
    ("train",),
    ("grid",),
    ("analysis",),
    ("report",),
    ("cli",),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path, package: Path) -> tuple[str, list[str]]:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), parts[:-1]
    return ".".join(parts), parts[:-1]


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}`` inside pepr_utils, for every import statement anywhere in a module."""
    def exists(dotted: str) -> bool:
        path = package.parent / dotted.replace(".", "/")
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    graph: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        name, pkg = _module_name(path, package)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = (".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                        if node.level else node.module or "")
                if base.split(".")[0] != "pepr_utils":
                    continue
                for alias in node.names:  # ``from . import x`` imports the module x
                    deps.add(f"{base}.{alias.name}" if exists(f"{base}.{alias.name}") else base)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "pepr_utils"}
        graph[name] = deps - {name}
    return graph


def unit_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: pepr_utils itself (its version only)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def arrows_up(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, deps in graph.items():
        here = unit_of(module)
        for dep in deps:
            there = unit_of(dep)
            if here is None or there is None or here == there:
                continue
            if RANK[there] >= RANK[here]:
                bad.append(f"{module} -> {dep} ({here} is on layer {RANK[here]}, {there} on {RANK[there]})")
    return sorted(bad)


def test_every_unit_has_a_layer():
    units = {unit_of(m) for m in import_graph()} - {None}
    assert units - set(RANK) == set(), "a new module or sub-package: give it a layer in LAYERS"
    assert set(RANK) - units == set(), "LAYERS names a unit that is gone"


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_imports_only_go_down_the_layers():
    assert arrows_up(import_graph()) == []


def test_the_checks_can_fail(tmp_path):
    """A planted circle and a planted arrow up are both found."""
    pkg = tmp_path / "pepr_utils"
    (pkg / "grid").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from .grid import runner\n")  # the ground importing the grid: up
    (pkg / "grid" / "__init__.py").write_text("")
    (pkg / "grid" / "runner.py").write_text("from . import worker\n")
    (pkg / "grid" / "worker.py").write_text("def f():\n    from .runner import x\n")  # a circle, inside a function
    graph = import_graph(pkg)
    assert circles(graph) == [["pepr_utils.grid.runner", "pepr_utils.grid.worker"]]
    assert arrows_up(graph) == ["pepr_utils.errors -> pepr_utils.grid.runner (errors is on layer 0, grid on 6)"]


@pytest.mark.parametrize("unit", [u for u in RANK if (PACKAGE / u / "__init__.py").is_file()])
def test_each_sub_package_has_a_face_whose_names_resolve(unit):
    face = importlib.import_module(f"pepr_utils.{unit}")
    assert face.__doc__ and len(face.__doc__.strip().splitlines()) >= 2, "say what the package is for and exports"
    assert face.__all__, f"pepr_utils.{unit} exports nothing"
    missing = [name for name in face.__all__ if not hasattr(face, name)]
    assert missing == []
