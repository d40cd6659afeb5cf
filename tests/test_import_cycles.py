"""Configuration, privacy, logging, commands and the platforms import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
GUARDED = (
    "bridge.config", "bridge.settings", "bridge.targets", "bridge.privacy", "bridge.log",
    "bridge.commands", "bridge.platforms",
)  # fmt: skip


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ("bridge", "consumers"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``path`` imports, at any level (``TYPE_CHECKING`` blocks included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= submodules or ({node.module} & known)
    return found


def cycles() -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    found = modules()
    graph = {m: imports(p, set(found)) - {m} for m, p in found.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    result: list[set[str]] = []

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
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(component)

    for vertex in graph:
        if vertex not in index:
            visit(vertex)
    return result


def test_no_cycle_runs_through_config_privacy_logging_or_platforms() -> None:
    """No import cycle contains bridge.config, .settings, .privacy, .log, .commands or a platform."""
    tangled = [
        sorted(c)
        for c in cycles()
        if any(m == g or m.startswith(g + ".") for m in c for g in GUARDED)
    ]
    assert [] == tangled


def test_the_cycle_finder_sees_a_cycle(tmp_path: Path) -> None:
    """imports() follows ``from package import submodule`` to the submodule."""
    path = tmp_path / "m.py"
    path.write_text("from bridge.platforms import base\nimport bridge.config\n")
    known = {"bridge.platforms", "bridge.platforms.base", "bridge.config"}
    assert {"bridge.platforms.base", "bridge.config"} == imports(path, known)
