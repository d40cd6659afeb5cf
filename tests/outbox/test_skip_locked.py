"""PostgreSQL: a claim never waits behind rows another transaction holds (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import pytest

from bridge.outbox import open_store
from tests.outbox.helpers import T0, add, write

pytestmark = pytest.mark.postgres


async def test_a_claim_skips_rows_locked_by_another_transaction(postgres_schema_dsn: str) -> None:
    """While another transaction holds the oldest row locked (a relay mid-claim elsewhere), a
    claim returns the other due rows at once instead of blocking behind the lock."""
    store = await open_store(postgres_schema_dsn)
    try:
        await store.migrate()
        locked, free = await add(store, write("variant:1", "k1"), write("variant:2", "k2"))
        parts = urlsplit(postgres_schema_dsn)
        schema = parse_qs(parts.query)["search_path"][0]
        holder = await asyncpg.connect(urlunsplit(parts._replace(query="")))
        try:
            tx = holder.transaction()
            await tx.start()
            await holder.execute(
                f'SELECT 1 FROM "{schema}".outbox WHERE id = $1 FOR UPDATE',  # noqa: S608 - test schema name
                locked.id,
            )
            claimed = await asyncio.wait_for(store.claim("shop-a", "relay-1", 10, 30.0, T0), 5)
            await tx.rollback()
        finally:
            await holder.close()
        assert [free.id] == [r.id for r in claimed]
    finally:
        await store.close()
