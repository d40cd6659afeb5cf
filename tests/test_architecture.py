"""The walls of the package: no import cycle, runtime apart from dev tooling, small modules.

The import graph is read from the source with ``ast`` (every ``import``, also inside functions;
not those under ``if TYPE_CHECKING:``, which never run). ``from pkg import sub`` where ``sub`` is a
module is an edge to ``pkg.sub``; the implicit import of a parent package is not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bridge", "consumers")
RUNTIME = ("bridge.ingress", "bridge.kafka", "bridge.outbox", "bridge.relay", "consumers")
DEV_TOOLING = "bridge.devtools"
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_in(child))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    anchor = package[: len(package) - node.level + 1]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports."""
    targets: set[str] = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = _base(module, path, node)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            targets.add(candidate if candidate in known else base)
    return {t for t in targets if t in known and t != module}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected component with more than one module."""
    found: list[list[str]] = []
    for component in _components(graph):
        if len(component) > 1:
            start = min(component)
            found.append(_shortest_cycle(graph, start, component))
    return sorted(found)


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    result.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result


def _shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & within):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_sees_imports_inside_functions() -> None:
    """The reader finds a function-level import (the kind that hides a cycle)."""
    path = ROOT / "bridge" / "cli.py"
    assert "bridge.clitools" in imported_modules("bridge.cli", path, set(module_files()))


def test_cycle_finder_reports_a_cycle() -> None:
    """A three-module loop is reported once, starting from its smallest name."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [["a", "b", "c", "a"]] == cycles(graph)


def test_no_import_cycle() -> None:
    """No module of bridge/ or consumers/ imports itself through others."""
    assert [] == [" -> ".join(cycle) for cycle in cycles(import_graph())]


def test_runtime_never_imports_dev_tooling() -> None:
    """Ingress, Kafka, outbox, relay and consumers run without bridge.devtools."""
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if any(_inside(module, package) for package in RUNTIME)
        for target in targets
        if _inside(target, DEV_TOOLING)
    )
    assert [] == offending


def long_modules() -> list[tuple[str, int]]:
    """Modules over the ~400-line guideline: a list to report, not a rule to fail on."""
    sizes = ((name, len(path.read_text(encoding="utf-8").splitlines())) for name, path in
             module_files().items())  # fmt: skip
    return sorted((name, lines) for name, lines in sizes if lines > MAX_LINES)


if __name__ == "__main__":  # python -m tests.test_architecture: the report
    for name, lines in long_modules():
        print(f"{lines:5d}  {name}")
