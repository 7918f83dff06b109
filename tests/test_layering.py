"""The package's import graph: no cycle, and no module imports a layer above its own (the README's "Layout" section).

Every `import` in every module counts, including those inside functions and under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "exssnet"

# Each layer may import the layers above it (smaller numbers), never one below. Longest prefix wins.
LAYERS: dict[str, float] = {
    "exssnet.errors": 0,
    "exssnet.registry": 0,
    "exssnet.layers": 1,
    "exssnet.supermask": 2,
    "exssnet.metrics": 2,
    "exssnet.checkpoint": 2,
    "exssnet.export": 2,
    "exssnet.export_files": 2,
    "exssnet.task_inference": 2,
    "exssnet.kkt": 2,
    "exssnet.diagnosis": 2,
    "exssnet.footprint": 2,
    "exssnet.seeds": 2,
    "exssnet.modes": 2,
    "exssnet.distributed": 2,
    "exssnet.amp": 2,
    "exssnet.allocator": 2,
    "exssnet.models": 2,
    "exssnet.data": 2,
    # settings dataclasses: the core settings and the base of each method's own settings
    "exssnet.settings": 2,
    "exssnet.methods": 3,
    "exssnet.run": 4,
    # reads what runs write (file names from run.files); a run never needs a report
    "exssnet.report": 4.5,
    "exssnet.commands": 5,
    "exssnet.cli": 5,
    "exssnet.__main__": 5,
}
# `exssnet/__init__.py` re-exports the public API (layers 0-2) and holds `__version__`; importing the bare package
# for `__version__` is allowed from anywhere.
TOP = "exssnet"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> float | None:
    best = None
    for prefix, level in LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, level)
    return None if best is None else best[1]


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The package modules `path` imports anywhere in its body (resolving relative and `from pkg import mod`)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import mod` imports the submodule; `from pkg import name` imports pkg itself
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # the deepest package module named by the import
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith(TOP) and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def test_every_module_has_a_layer():
    missing = [name for name in all_modules() if name != TOP and layer_of(name) is None]
    assert not missing, f"modules with no layer in tests/test_layering.py: {missing}"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, targets in graph.items():
        own = layer_of(name)
        for target in sorted(targets):
            if target == TOP or own is None:
                continue
            level = layer_of(target)
            if level is not None and level > own:
                bad.append(f"{name} (layer {own}) imports {target} (layer {level})")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == TOP:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_upward_import():
    bad = upward_imports(import_graph())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = import_graph()
    # a package's __init__ importing its own submodules is how it re-exports them; a submodule importing its
    # package back is the cycle that matters, and it shows up as an edge to the package name
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"exssnet.a": {"exssnet.b"}, "exssnet.b": {"exssnet.a"}}, ["exssnet.a", "exssnet.b", "exssnet.a"]),
        ({"exssnet.a": {"exssnet.b"}, "exssnet.b": set()}, None),
    ],
)
def test_cycle_finder_names_the_modules(graph, expected):
    assert find_cycle(graph) == expected


def test_upward_import_is_named():
    graph = {"exssnet.checkpoint": {"exssnet.run.runner"}, "exssnet.run.runner": {"exssnet.checkpoint"}}
    assert upward_imports(graph) == ["exssnet.checkpoint (layer 2) imports exssnet.run.runner (layer 4)"]


def test_function_level_imports_are_seen(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from exssnet.run.runner import run_experiment\n")
    modules = all_modules()
    assert imported_modules(source, "exssnet.checkpoint", modules) == {"exssnet.run.runner"}
