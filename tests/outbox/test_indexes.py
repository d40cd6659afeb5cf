"""Outbox contract, part 6: finished rows cost the relay's statements nothing (migration 0004).

The relay's claim, poll and retry statements must read live rows (or a target's newer rows)
through an index, never every row of a shop: the outbox keeps finished rows until the purge,
and bench/outbox_scale.py measures a million of them. The SQLite plans are deterministic and
pinned here; on PostgreSQL the plan depends on statistics, so the indexes' existence is pinned.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from bridge.outbox import OutboxStore
from bridge.outbox.sqlite import SQLiteOutboxStore, sqlite_path

FLAT_INDEXES = {"outbox_live", "outbox_newer", "outbox_dead"}
PARAMS = {
    "shop": "shop-a", "target": "variant:1", "kind": "set_stock", "id": 1, "now": 0.0,
    "owner": "relay", "until": 0.0, "limit": 10, "next": 0.0, "error": "", "undo": 0,
}  # fmt: skip


async def index_names(dsn: str) -> set[str]:
    if dsn.startswith("sqlite:"):
        with sqlite3.connect(sqlite_path(dsn)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        conn.close()
        return {str(name) for (name,) in rows}
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'outbox'")
    finally:
        await conn.close()
    return {str(r["indexname"]) for r in rows}


async def test_migration_0004_creates_the_flat_indexes(store: OutboxStore, outbox_dsn: str) -> None:
    """The partial indexes of live rows, of a target's newer rows and of dead rows exist."""
    assert FLAT_INDEXES == FLAT_INDEXES & await index_names(outbox_dsn)


def sqlite_plan(dsn: str, statement: str) -> str:
    with sqlite3.connect(sqlite_path(dsn)) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", PARAMS).fetchall()
    conn.close()
    return " | ".join(str(r[3]) for r in rows)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("claim", "SEARCH o USING INDEX outbox_live (shop=?)"),
        ("due_shops", "SCAN o USING INDEX outbox_live"),
        ("mark_retry", "SEARCH n USING INDEX outbox_newer (shop=? AND target=? AND id>?)"),
        ("retry", "SEARCH n USING INDEX outbox_newer (shop=? AND target=? AND id>?)"),
        ("supersede", "SEARCH outbox USING INDEX outbox_active_target (shop=? AND target=? AND"),
        ("depth", "SCAN outbox USING COVERING INDEX outbox_live"),
        ("depth", "SCAN outbox USING COVERING INDEX outbox_dead"),
    ],
)
async def test_sqlite_relay_statements_read_live_or_newer_rows_only(
    tmp_path: Path, statement: str, expected: str
) -> None:
    """On SQLite, claim, poll, supersede and depth read partial indexes, a retry outbox_newer."""
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    store = await SQLiteOutboxStore.open(dsn)
    try:
        await store.migrate()
    finally:
        await store.close()
    plan = sqlite_plan(dsn, getattr(SQLiteOutboxStore.sql, statement))
    assert expected in plan, plan
    assert "SCAN outbox" not in plan.split(" | "), plan  # no full table scan
    assert "outbox_claim" not in plan, plan  # nor one of the index over every row
