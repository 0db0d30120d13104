"""The project's import graph has no cycles and follows the layers: every import a module runs (at module level or
inside a function), plus ``ray_layer("name")``, the one dynamic hook into ``jobs/``; imports for type checkers only do
not count."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for top in ("ser", "jobs") for p in (REPO / top).rglob("*.py")
             if "configs" not in p.relative_to(REPO).parts}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ray_layer"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                targets = [f"jobs.{node.args[0].value}"]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_sees_the_hook_into_jobs():
    graph = import_graph()
    assert {"jobs.tune", "jobs.infer"} <= graph["ser.engine"] and "ser.tuning.per_fold" in graph["jobs.tune"]


def test_no_import_cycle_among_the_projects_modules():
    assert cycles(import_graph()) == []


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


LAYERS = ("ser._util", "ser.data", "ser.measures", "ser.fusion", "ser.config", "ser.evaluation", "ser.tuning",
          "ser.reporting", "ser.inference")
"""ser's layer packages, lowest first (docs/design.md §1): a module imports only from its own layer and those below.
Everything else (``ser`` itself, ``ser.api``, ``ser.study``, ``ser.cli``, ``ser.engine``, ``ser.testing``, ``jobs``)
is the application on top, which may import any layer."""


def layer(module: str) -> int:
    """A module's place in ``LAYERS`` (the application: one above the top layer)."""
    return next((i for i, package in enumerate(LAYERS) if module == package or module.startswith(package + ".")),
                len(LAYERS))


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer into a higher one, as "importer -> imported"."""
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if t != "ser" and layer(t) > layer(m))


def test_every_layer_imports_only_itself_and_the_layers_below():
    graph = import_graph()
    assert all(any(m.startswith(p) for m in graph) for p in LAYERS)
    top = [m for m in graph if m.startswith("ser.") and layer(m) == len(LAYERS)]
    assert sorted(top) == ["ser.__main__", "ser.api", "ser.cli", "ser.cli.__main__", "ser.cli.commands",
                           "ser.cli.parser", "ser.engine", "ser.study", "ser.testing", "ser.testing.tiny_models"], \
        "a module outside the layer packages: place it in one"
    assert upward_imports(graph) == []


def test_an_upward_import_would_be_found():
    assert upward_imports({"ser.data.folds": {"ser.tuning.choice", "ser._util.io", "ser"}}) == [
        "ser.data.folds -> ser.tuning.choice"]
