"""The layers of DESIGN.md, read from the source: every import of every project module (at
module level, inside functions and under ``TYPE_CHECKING`` alike, parsed with ``ast``, never
executed) goes to its own layer or a lower one, and no project modules import each other in a
circle.

DESIGN.md lists the packages in the order data flows (sweeps → trainables → results →
analysis); imports follow calls, so the import order puts ``analysis`` (which reads what a
sweep wrote through the sweep registry) above ``sweeps``, and ``tests`` and ``benchmarks`` at
the top: nothing in the product imports them. Inside ``trainables`` the trainables registry
sits above the one trainable per task kind, which sits above what they compose (engine,
datasets, models, augment, metrics …), as DESIGN.md describes them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tests", "benchmarks", "analysis", "sweeps", "search_spaces", "trainables")
# Top to bottom: a module may import from its own layer or any layer below it. A module is in
# the layer of the longest prefix here that names it or a package above it.
LAYERS = (
    ("tests",),
    ("benchmarks",),
    ("analysis",),
    ("sweeps",),
    ("search_spaces",),
    ("trainables.registry",),
    ("trainables.classification", "trainables.detection", "trainables.segmentation"),
    ("trainables",),
)


def module_name(path: Path) -> str:
    """``trainables/models/rcnn.py`` → ``trainables.models.rcnn``; a package's ``__init__`` is the package."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every Python module of the project's packages, by dotted name."""
    return {module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))}


MODULES = project_modules()
# A test helper imported by its bare name (``tests/`` on ``sys.path``) is still ``tests``.
BARE_TEST_MODULES = {name.removeprefix("tests."): name for name in MODULES if name.startswith("tests.")}


def resolve(name: str) -> str | None:
    """The project module an absolute import of ``name`` reaches: ``name`` itself or the
    module holding it (``pkg.mod.Class`` → ``pkg.mod``); None outside the project."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return BARE_TEST_MODULES.get(parts[0])


def imported_modules(name: str, path: Path) -> set[str]:
    """The project modules that module ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.update(resolve(f"{base}.{alias.name}") for alias in node.names)
    return found - {None, name}


IMPORTS = {name: imported_modules(name, path) for name, path in MODULES.items()}


def layer_of(name: str) -> int:
    """The index in ``LAYERS`` (0: top) of the most specific entry naming ``name`` or a package above it."""
    matches = [(len(entry), index) for index, layer in enumerate(LAYERS) for entry in layer
               if name == entry or name.startswith(f"{entry}.")]
    return max(matches)[1]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_parser_sees_type_checking_function_level_and_relative_imports(tmp_path):
    source = tmp_path / "trainables" / "fake.py"
    source.parent.mkdir()
    source.write_text("from typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    from trainables.detection import DetectionConfig\n"
                      "def f():\n    import sweeps.registry\n"
                      "from .models import rcnn\nimport synthetic_data\n")
    assert imported_modules("trainables.fake", source) == {"trainables.detection", "sweeps.registry",
                                                           "trainables.models.rcnn", "tests.synthetic_data"}


def test_the_cycle_finder_finds_a_circle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [["a", "b"]]


def test_no_project_modules_import_each_other_in_a_circle():
    assert cycles(IMPORTS) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_nothing_imports_upward(name):
    upward = sorted(other for other in IMPORTS[name] if layer_of(other) < layer_of(name))
    assert not upward, f"{name} (layer {LAYERS[layer_of(name)]}) imports from layers above it: {upward}"


def test_no_product_module_imports_the_tests():
    product = [name for name in MODULES if not name.startswith(("tests", "benchmarks"))]
    assert product and not [name for name in product if any(other.startswith("tests") for other in IMPORTS[name])]
    assert not (REPO / "trainables" / "datasets" / "synthetic.py").exists()


def assigned_names(node: ast.stmt) -> set[str]:
    """The plain names a module-level statement assigns (``X = …``, ``X: int = …``)."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return {target.id for target in targets if isinstance(target, ast.Name)}


def test_ray_resource_unit_is_defined_in_one_module():
    defining = [name for name, path in MODULES.items() for node in ast.parse(path.read_text()).body
                if "RAY_RESOURCE_UNIT" in assigned_names(node)]
    assert defining == ["sweeps.packing"]
