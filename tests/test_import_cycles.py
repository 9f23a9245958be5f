"""No import cycles among the modules of ``engine/`` and ``lorch_tui/``.

Statically, with ``ast``: every ``import`` and ``from ... import`` of a module (relative ones
resolved; ``from pkg import mod`` is an edge to the submodule), including imports inside
functions (a lazy import that closes a loop is still a cycle in the design; only blocks under
``if TYPE_CHECKING:`` are left out, since they never run). Strongly connected components of
more than one module (or a module importing itself) are cycles. The checker is itself tested
on a package made to have one, so this test can fail.
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
