"""The import graph of ``workbench`` and ``widgets``: no cycle, and imports run down the layers.

Every ``import`` statement is read with :mod:`ast` (module level and inside functions alike), so
a lazy import counts as much as an eager one. Run it alone: ``pytest tests/unit/test_layering.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workbench", "widgets")
LENSES = ("grokking", "superposition", "spectrum", "koopman")

# Lower layers never import higher ones. Lens packages share one layer and never import each other.
LAYERS: list[tuple[str, ...]] = [
    ("validation", "device", "parallel", "serialization", "backend", "trajectory", "tasks", "optim",
     "registry"),
    ("store", "artifacts", "checkpoint_io", "integrity", "runlock", "run_check", "traj_file"),
    ("record",),
    ("train",),
    LENSES + ("checkpoints",),
    ("integrations", "sweep", "report", "__init__"),
    ("widgets",),
    ("cli",),  # the application shell: `workbench serve` and `workbench report` start the view layer
]
# Imports allowed to run back up (none today). The registry names models by "module:Class" paths
# resolved when a model is built, so the store can rebuild a run's model without importing a lens.
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Modules of ours that ``path`` imports (``from a.b import c`` → ``a.b.c`` if that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {mod: {m for m in imports(path) if m in files and m != mod} for mod, path in files.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "widgets":
        return LAYERS.index(("widgets",))
    key = parts[1] if len(parts) > 1 else "__init__"
    for i, names in enumerate(LAYERS):
        if key in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")


def package_of(module: str) -> str:
    """The unit a cycle is judged at: a lens package, widgets' sub-packages, or a house module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_cycle():
    assert find_cycle(graph()) is None, f"import cycle: {' → '.join(find_cycle(graph()))}"


def test_no_package_cycle():
    """Lens packages and widgets' sub-packages, each taken as one node, import without a cycle."""
    edges: dict[str, set[str]] = {}
    for mod, deps in graph().items():
        edges.setdefault(package_of(mod), set()).update(
            package_of(d) for d in deps if package_of(d) != package_of(mod))
    assert find_cycle(edges) is None, f"package cycle: {' → '.join(find_cycle(edges))}"


def test_imports_run_down_the_layers():
    upward = sorted((mod, dep) for mod, deps in graph().items() for dep in deps
                    if layer_of(dep) > layer_of(mod) and (mod, dep) not in ALLOWED_UPWARD)
    assert not upward, f"imports running back up the layers: {upward}"


def test_lenses_do_not_import_each_other():
    crossing = sorted((mod, dep) for mod, deps in graph().items() for dep in deps
                      if mod.split(".")[0] == "workbench" and package_of(mod).split(".")[-1] in LENSES
                      and package_of(dep).split(".")[-1] in LENSES and package_of(dep) != package_of(mod))
    assert not crossing, f"one lens imports another: {crossing}"


def test_workbench_never_imports_widgets():
    wrong = sorted((m, d) for m, deps in graph().items() for d in deps
                   if m.startswith("workbench") and not (m + ".").startswith("workbench.cli.")
                   and d.startswith("widgets"))
    assert not wrong, f"the view layer is imported by the package: {wrong}"
