"""Pure helpers of the outbox and SQLite-specific behaviour."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bridge.outbox
from bridge.outbox import OutboxError, open_store
from bridge.outbox.bucket import gcra_slots
from bridge.outbox.migrations import load_migrations, split_sql
from bridge.outbox.sqlite import sqlite_path
from tests.outbox.helpers import T0, write


def test_gcra_without_burst_spaces_by_interval() -> None:
    """Each request is sent one interval after the previous; tat ends one interval later."""
    assert ([T0 + 1, T0 + 1.5, T0 + 2], T0 + 2.5) == gcra_slots(T0 + 1, 0.0, 2.0, 1, 3, T0)


def test_gcra_not_before_wins() -> None:
    """A deferral pushes every slot to at least not_before."""
    assert ([T0 + 9, T0 + 10], T0 + 11) == gcra_slots(0.0, T0 + 9, 1.0, 1, 2, T0)


def test_gcra_horizon_stops_handing_out_slots() -> None:
    """Slots past the horizon are not returned and do not advance tat."""
    assert ([T0, T0 + 1], T0 + 2) == gcra_slots(0.0, 0.0, 1.0, 1, 5, T0, horizon=T0 + 1.5)


def test_split_sql_keeps_semicolons_in_strings_and_comments() -> None:
    """Statements split on real terminators only."""
    script = "CREATE TABLE t (a TEXT DEFAULT ';'); -- done; really\nINSERT INTO t VALUES ('x;y');\n"
    assert [
        "CREATE TABLE t (a TEXT DEFAULT ';');",
        "-- done; really\nINSERT INTO t VALUES ('x;y');",
    ] == split_sql(script)


def test_both_dialects_have_the_same_migration_versions() -> None:
    """Every migration exists for SQLite and for PostgreSQL, numbered without gaps."""
    sqlite = [(m.version, m.name) for m in load_migrations("sqlite")]
    assert sqlite == [(m.version, m.name) for m in load_migrations("postgres")]
    assert [
        (1, "0001_init.sql"),
        (2, "0002_shop_keys_superseding_priority.sql"),
        (3, "0003_first_sent_at.sql"),
        (4, "0004_flat_indexes.sql"),
    ] == sqlite


@pytest.mark.parametrize(
    ("dsn", "path"),
    [
        ("sqlite:///var/bridge/outbox.db", "var/bridge/outbox.db"),
        ("sqlite:////srv/bridge/o.db", "/srv/bridge/o.db"),
    ],
)
def test_sqlite_dsn_paths(dsn: str, path: str) -> None:
    """sqlite:/// is relative, sqlite://// absolute."""
    assert path == sqlite_path(dsn)


@pytest.mark.parametrize("dsn", ["mysql://db/outbox", "sqlite://", "sqlite:relative.db"])
async def test_unsupported_dsn_is_refused(dsn: str) -> None:
    """open_store explains which dsn forms it accepts."""
    with pytest.raises(OutboxError, match="sqlite:///"):
        await open_store(dsn)


async def test_sqlite_creates_parent_directories(tmp_path: Path) -> None:
    """The SQLite file's directory is created on open."""
    store = await open_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'outbox.db'}")
    try:
        await store.migrate()
    finally:
        await store.close()
    assert (tmp_path / "a" / "b" / "outbox.db").exists()


async def test_sqlite_store_used_inside_its_own_transaction_raises(tmp_path: Path) -> None:
    """Calling the store from inside its open transaction fails fast instead of deadlocking."""
    store = await open_store(f"sqlite:///{tmp_path / 'outbox.db'}")
    await store.migrate()
    try:

        async def reenter() -> None:
            async with store.transaction() as tx:
                await tx.add(write("variant:1", "k1"), T0)
                await store.counts()

        with pytest.raises(OutboxError, match="inside its own open transaction"):
            await reenter()
        assert {} == await store.counts()
    finally:
        await store.close()


def module_imports(path: Path) -> set[str]:
    """The bridge.outbox modules ``path`` imports anywhere, also inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bridge.outbox"):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bridge.outbox")}
    return found


def test_outbox_modules_import_without_cycles_and_contract_imports_no_store() -> None:
    """The outbox's import graph is acyclic; only the factory imports an implementation."""
    package = Path(bridge.outbox.__file__).parent
    graph = {
        f"bridge.outbox.{p.stem}" if p.stem != "__init__" else "bridge.outbox": module_imports(p)
        for p in package.glob("*.py")
    }
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert "open" != state.get(module), f"import cycle: {' -> '.join([*path, module])}"
        state[module] = "open"
        for imported in sorted(graph.get(module, set())):
            visit(imported, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    implementations = {"bridge.outbox.sqlite", "bridge.outbox.postgres"}
    for module in ("store", "contract", "rows", "policy", "engine", "bucket", "migrations"):
        assert set() == graph[f"bridge.outbox.{module}"] & implementations
