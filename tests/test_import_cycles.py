"""No import cycles among the modules of ``engine/`` and ``lorch_tui/``, nor among their packages.

Statically, with ``ast``: every ``import`` and ``from ... import`` of a module (relative ones
resolved; ``from pkg import mod`` is an edge to the submodule), including imports inside
functions (a lazy import that closes a loop is still a cycle in the design; only blocks under
``if TYPE_CHECKING:`` are left out, since they never run). Strongly connected components of
more than one module (or a module importing itself) are cycles. The checker is itself tested
on a package made to have one, so this test can fail.

The same check runs on the package graph (every module collapsed to its package:
``engine.run.task`` -> ``engine.run``; a top-level module such as ``engine.errors`` stays
itself), the engine's packages follow the layer order of docs/architecture.md ("How engine/
is grouped"), and ``engine/`` keeps only a handful of top-level modules, so the grouping by
concern does not erode.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("engine", "lorch_tui")


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in (root / pkg).rglob("*.py"):
            if "__pycache__" not in path.parts:
                name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
                out[name] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (anywhere in it but TYPE_CHECKING blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m in known and m != name} | ({name} & found)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop()
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(graph[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in graph[v]:
                    out.append(sorted(comp))
    return out


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_no_import_cycles_in_engine_and_lorch_tui() -> None:
    graph = import_graph(REPO, PACKAGES)
    # the parser really sees the imports (a test that parsed nothing would pass)
    assert len(graph) > 100 and sum(len(v) for v in graph.values()) > 300
    assert "engine.clients.charts" in graph["engine.stages.project"]
    assert "engine.index.query" in graph["lorch_tui.querycmd"]
    found = cycles(graph)
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "engine"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from engine.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import c\n")  # lazy and relative
    (pkg / "c.py").write_text("import engine.a\nfrom typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from engine import d\n")
    (pkg / "d.py").write_text("from engine import c\n")  # only a TYPE_CHECKING edge back: no cycle
    assert cycles(import_graph(tmp_path, ("engine",))) == [["engine.a", "engine.c", "engine.sub.b"]]


TOP_LEVEL_MAX = 8
"""``engine/*.py`` beside the packages: ``__init__`` and the shared leaves (errors, events,
names, limits, check, cancel) and room for one more. A new module belongs in a package."""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("engine", "engine.errors", "engine.events", "engine.check", "engine.cancel", "engine.vectors",
     "engine.demo_taps"),
    ("engine.store",),
    ("engine.config",),
    ("engine.vault",),
    ("engine.limits",),
    ("engine.canon",),
    ("engine.drift", "engine.index", "engine.names"),
    ("engine.clients", "engine.ops"),
    ("engine.measures",),
    ("engine.stages",),
    ("engine.run",),
)
"""The engine's layers, lowest first, as docs/architecture.md lists them: a package imports
only packages of earlier layers. A package not listed here is only held to the cycle check."""


def package_of(name: str, root: Path) -> str:
    """``engine.run.task`` -> ``engine.run``; a top-level module (``engine.errors``) is its own."""
    parts = name.split(".")
    if len(parts) >= 2 and (root / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return name


def package_graph(graph: dict[str, set[str]], root: Path) -> dict[str, set[str]]:
    """The import graph with every module collapsed to its package (no self edges)."""
    out: dict[str, set[str]] = {}
    for name, deps in graph.items():
        pkg = package_of(name, root)
        out.setdefault(pkg, set()).update(package_of(d, root) for d in deps)
    for pkg, deps in out.items():
        deps.discard(pkg)
    return out


def test_no_import_cycles_between_packages() -> None:
    graph = package_graph(import_graph(REPO, PACKAGES), REPO)
    # collapsed for real: the run machinery is one node that imports the stages
    assert "engine.run" in graph and "engine.run.task" not in graph
    assert "engine.stages" in graph["engine.run"] and "engine.store" in graph["engine.config"]
    found = cycles(graph)
    assert found == [], "import cycles between packages: " + "; ".join(" <-> ".join(c) for c in found)


def test_engine_packages_import_only_earlier_layers() -> None:
    graph = package_graph(import_graph(REPO, ("engine",)), REPO)
    layer = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}
    assert set(layer) <= set(graph), f"layers name packages that do not exist: {sorted(set(layer) - set(graph))}"
    wrong = sorted(f"{pkg} -> {dep}" for pkg, deps in graph.items() if pkg in layer
                   for dep in deps if dep in layer and layer[dep] >= layer[pkg])
    assert wrong == [], "imports against the layer order (docs/architecture.md): " + ", ".join(wrong)


def test_the_package_checker_collapses_and_finds_a_loop(tmp_path: Path) -> None:
    pkg = tmp_path / "engine"
    for sub in ("a", "b"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from engine.b import y\n")
    (pkg / "b" / "y.py").write_text("")
    (pkg / "b" / "z.py").write_text("from engine.a.w import f\n")  # no module cycle, a package loop
    (pkg / "a" / "w.py").write_text("def f() -> None: ...\n")
    graph = import_graph(tmp_path, ("engine",))
    assert cycles(graph) == []
    assert cycles(package_graph(graph, tmp_path)) == [["engine.a", "engine.b"]]


def test_engine_keeps_few_top_level_modules() -> None:
    top = sorted(p.stem for p in (REPO / "engine").glob("*.py"))
    assert {"__init__", "errors", "events"} <= set(top), top  # the glob really sees engine/
    assert len(top) <= TOP_LEVEL_MAX, (
        f"engine/ has {len(top)} top-level modules ({', '.join(top)}); put new modules into the "
        f"package of their concern (docs/architecture.md, 'How engine/ is grouped')")
