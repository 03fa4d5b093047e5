"""The package's layers, read from the code's own imports (stdlib ``ast``, nothing is imported).

Each folder of virtio_lab is a layer and may import only the layers below it:

    errors, files, trace  <  pci  <  hw  <  guest  <  text  <  live  <  course  <  views  <  widgets  <  cli

so the import graph has no cycle and no upward arrow; ipywidgets is imported only in
widgets/, matplotlib and pandas only in views/. A failure prints the offending edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "virtio_lab"

#: Layer of each top-level module or folder, lowest first. The package face (__init__,
#: _moved) names modules only as strings, to import them lazily; it is not a layer.
LAYERS = ("errors", "files", "trace", "pci", "hw", "guest", "text", "live", "course", "views", "widgets",
          "cli", "__main__")
BOTTOM = ("errors", "files", "trace")  # one layer: they import nothing above them
RANK = {name: (0 if name in BOTTOM else LAYERS.index(name) - len(BOTTOM) + 1) for name in LAYERS}
FACE = {"virtio_lab", "virtio_lab._moved"}
#: Third-party libraries and the only layer that may import each.
HEAVY = {"ipywidgets": "widgets", "matplotlib": "views", "pandas": "views"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module imported, line) for every import in the file, nested ones included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import regs" imports the submodule regs when there is one
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            out += [(t, node.lineno) for t in (subs or [target])]
    return out


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _layer(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if parts[0] == "virtio_lab" and len(parts) > 1 and parts[1] in RANK else None


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
EDGES = [(name, target, line) for name, path in MODULES.items() for target, line in _imports(path)]


def _where(name: str, line: int) -> str:
    return f"{MODULES[name].relative_to(PACKAGE.parent)}:{line}"


def test_every_module_has_a_layer():
    orphans = [n for n in MODULES if n not in FACE and _layer(n) is None]
    assert not orphans, f"modules outside the layers {LAYERS}: {orphans}"


def test_no_import_runs_up_or_sideways():
    bad = [f"{_where(a, line)}: {a} imports {b} ({_layer(a)} may not import {_layer(b)})"
           for a, b, line in EDGES
           if a not in FACE and _layer(b) and RANK[_layer(b)] > RANK[_layer(a)]]
    assert not bad, "\n".join(bad)


def test_below_the_views_nothing_imports_views_or_widgets():
    low = ("pci", "hw", "guest", "text", "live", "course") + BOTTOM
    bad = [f"{_where(a, line)}: {a} imports {b}" for a, b, line in EDGES
           if _layer(a) in low and _layer(b) in ("views", "widgets")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("library", sorted(HEAVY))
def test_heavy_libraries_stay_in_their_layer(library):
    bad = [f"{_where(a, line)}: {a} imports {b}" for a, b, line in EDGES
           if b.split(".")[0] == library and _layer(a) != HEAVY[library]]
    assert not bad, "\n".join(bad)


def test_no_cycles():
    graph: dict[str, set[str]] = {n: set() for n in MODULES}
    for a, b, _ in EDGES:
        if b in MODULES and b != a:
            graph[a].add(b)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checks_see_real_edges():
    """The reader must find the imports it polices (else every test above passes vacuously)."""
    edges = {(a, b) for a, b, _ in EDGES}
    assert ("virtio_lab.hw.virtio_pci", "virtio_lab.pci.regs") in edges  # from ..pci import regs
    assert ("virtio_lab.widgets.explorer", "ipywidgets") in edges
    assert ("virtio_lab.views.barmap", "matplotlib.patches") in edges  # a lazy import in a function
    assert len(MODULES) > 40
