"""Pure helpers of the outbox and SQLite-specific behaviour."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest

import bridge.outbox
from bridge.outbox import OutboxError, open_store
from bridge.outbox.bucket import gcra_slots
from bridge.outbox.migrations import load_migrations, split_sql
from bridge.outbox.sqlite import _set_up, sqlite_path
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


class _RecoveringFile:
    """Stands in for the connection while another process recovers the WAL after a crash: SQLite
    answers SQLITE_BUSY at once (no busy handler) to ``journal_mode`` the first ``busy`` times."""

    def __init__(self, busy: int, error: str = "database is locked") -> None:
        self.busy, self.error, self.statements = busy, error, list[str]()

    async def execute(self, sql: str) -> None:
        self.statements.append(sql)
        if "journal_mode" in sql and self.busy:
            self.busy -= 1
            raise sqlite3.OperationalError(self.error)


async def test_open_waits_out_a_crashed_writers_wal_recovery() -> None:
    """A second process opening the file during WAL recovery retries journal_mode, then goes on."""
    conn = _RecoveringFile(busy=3)
    await _set_up(conn, busy_timeout=5.0)  # type: ignore[arg-type]
    assert 4 == sum("journal_mode" in s for s in conn.statements)
    assert "PRAGMA synchronous = FULL" == conn.statements[-1]


async def test_open_gives_up_on_a_lock_held_past_busy_timeout() -> None:
    """The retry is bounded by busy_timeout: past it the lock error comes out as it is."""
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await _set_up(_RecoveringFile(busy=10_000), busy_timeout=0.1)  # type: ignore[arg-type]


async def test_open_does_not_retry_other_errors() -> None:
    """Only busy/locked is waited out; a broken file fails on the first try."""
    conn = _RecoveringFile(busy=1, error="file is not a database")
    with pytest.raises(sqlite3.OperationalError, match="not a database"):
        await _set_up(conn, busy_timeout=5.0)  # type: ignore[arg-type]
    assert 1 == sum("journal_mode" in s for s in conn.statements)


async def test_a_store_that_cannot_open_leaves_no_connection_thread(tmp_path: Path) -> None:
    """A file that is not a database: OutboxError naming it, and its connection is closed."""
    bad = tmp_path / "outbox.db"
    bad.write_bytes(b"this is not a sqlite file" * 100)
    with pytest.raises(OutboxError, match="cannot open SQLite outbox"):
        await open_store(f"sqlite:///{bad}")
