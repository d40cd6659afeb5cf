"""Outbox contract, part 5: migration 0002 upgrades a 0001 database with its rows in place."""

from __future__ import annotations

import sqlite3

import asyncpg

from bridge.outbox import Status
from bridge.outbox.sqlite import sqlite_path
from tests.outbox.conftest import OpenStore
from tests.outbox.helpers import T0, add, write

# (shop, kind, target, idempotency key, status) as the 0001 schema stored them
V1_ROWS = [
    ("shop-a", "set_stock", "variant:1", "k1", "pending"),
    ("shop-a", "note", "order:1", "k2", "pending"),
    ("shop-a", "set_stock", "variant:3", "k3", "done"),
]
INSERT = (
    "INSERT INTO outbox (shop, kind, target, payload, idempotency_key, status, next_attempt_at,"
    " created_at, updated_at) VALUES ({})"
)


async def insert_v1_rows_then_purge_the_last(dsn: str) -> None:
    """Write V1_ROWS straight into a 0001 schema, then delete the newest (as a purge would)."""
    values = [(*row[:3], '{"quantity": 1}', *row[3:], T0, T0, T0) for row in V1_ROWS]
    if dsn.startswith("sqlite:"):
        with sqlite3.connect(sqlite_path(dsn)) as conn:
            conn.executemany(INSERT.format(", ".join("?" * 9)), values)
            conn.execute("DELETE FROM outbox WHERE idempotency_key = 'k3'")
        conn.close()
        return
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(INSERT.format("$1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9"), values)
        await conn.execute("DELETE FROM outbox WHERE idempotency_key = 'k3'")
    finally:
        await conn.close()


async def test_0002_keeps_rows_ids_and_sets_superseding_from_the_kind(
    outbox_dsn: str, open_other: OpenStore
) -> None:
    """Upgraded rows keep their ids; set_stock rows supersede; purged ids are never reused."""
    store = await open_other()
    await store.migrate(upto=1)  # type: ignore[call-arg]
    await insert_v1_rows_then_purge_the_last(outbox_dsn)
    await store.migrate()
    rows = await store.list_rows()
    assert [(2, False, 0), (1, True, 0)] == [(r.id, r.superseding, r.priority) for r in rows]
    newer, other_shop = await add(
        store, write("variant:1", "k4"), write("variant:1", "k1", shop="shop-b")
    )
    assert (4, 1) == (newer.id, newer.superseded)
    assert (5, False) == (other_shop.id, other_shop.duplicate)
    old = await store.get(1)
    assert old is not None
    assert Status.SUPERSEDED == old.status
