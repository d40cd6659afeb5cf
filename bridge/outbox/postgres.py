"""PostgreSQL outbox store: production, shared by many relay replicas through an asyncpg pool.

Claims use ``FOR UPDATE SKIP LOCKED`` so replicas never wait on each other's rows; lane leases and
the token bucket are single-row upserts or ``SELECT … FOR UPDATE`` read-modify-writes, so the
per-shop rate limit holds across every replica. JSON columns are ``jsonb`` (orjson codec).
"""

# ruff: noqa: S608  # SQL is composed only from this module's constant fragments

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import orjson

from bridge.log import get_logger
from bridge.outbox.store import (
    ROW_COLUMNS,
    SET_STOCK,
    AddResult,
    NewWrite,
    OutboxError,
    OutboxRow,
    Status,
    gcra_slots,
    load_migrations,
    row_from_record,
)

log = get_logger(__name__)

# pg_advisory_xact_lock key serialising concurrent `migrate()` calls ("cbridge1" as an integer).
MIGRATION_LOCK = 0x6362726964676531


def _claimable(now: str) -> str:
    """A row `claim` may take: due, and the oldest live row of its (shop, target)."""
    return f"""
    ((o.status = 'pending' AND o.next_attempt_at <= {now})
     OR (o.status = 'in_flight' AND o.lease_until <= {now}))
    AND NOT EXISTS (
        SELECT 1 FROM outbox p
        WHERE p.shop = o.shop AND p.target = o.target AND p.id < o.id
          AND p.status IN ('pending', 'in_flight'))
    """


# A dead set_stock row is stale once a newer set_stock for its target exists.
_STALE = """
    o.kind = 'set_stock' AND EXISTS (
        SELECT 1 FROM outbox n
        WHERE n.shop = o.shop AND n.target = o.target AND n.kind = 'set_stock'
          AND n.id > o.id AND n.status <> 'superseded')
"""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


def _row(record: Any) -> OutboxRow:
    return row_from_record(record, record["payload"])


def _count(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3`` or ``DELETE 0``."""
    return int(status.rsplit(" ", 1)[-1])


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def add(self, write: NewWrite, now: float) -> AddResult:
        new_id = await self._conn.fetchval(
            "INSERT INTO outbox (shop, kind, target, payload, idempotency_key, next_attempt_at,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            write.shop,
            write.kind,
            write.target,
            dict(write.payload),
            write.idempotency_key,
            now,
        )
        if new_id is None:
            existing = await self._conn.fetchval(
                "SELECT id FROM outbox WHERE idempotency_key = $1", write.idempotency_key
            )
            return AddResult(id=int(existing), duplicate=True)
        if write.kind != SET_STOCK:
            return AddResult(id=int(new_id))
        superseded = await self._conn.fetchval(
            "WITH old AS (UPDATE outbox SET status = 'superseded', updated_at = $1"
            " WHERE shop = $2 AND target = $3 AND kind = 'set_stock' AND status = 'pending'"
            " AND id < $4 RETURNING id) SELECT max(id) FROM old",
            now,
            write.shop,
            write.target,
            new_id,
        )
        if superseded is not None:
            await self._conn.execute(
                "UPDATE outbox SET supersedes = $1 WHERE id = $2", superseded, new_id
            )
        return AddResult(id=int(new_id), superseded=None if superseded is None else int(superseded))

    async def get_state(self, namespace: str, key: str) -> Any | None:
        # Lock the key (present or not) until the transaction ends: consumers read, change and
        # write state, and READ COMMITTED alone would let two of them lose an update.
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 0))", namespace, key
        )
        return await self._conn.fetchval(
            "SELECT value FROM consumer_state WHERE namespace = $1 AND key = $2", namespace, key
        )

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        await self._conn.execute(
            "INSERT INTO consumer_state (namespace, key, value) VALUES ($1, $2, $3)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
            namespace,
            key,
            value,
        )


class PostgresOutboxStore:
    """OutboxStore on PostgreSQL (see module docstring)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> PostgresOutboxStore:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The message names host/database at most, never the password in the dsn.
            raise OutboxError(f"cannot connect to the PostgreSQL outbox: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def _execute(self, sql: str, *args: Any) -> int:
        async with self._pool.acquire() as conn:
            return _count(await conn.execute(sql, *args))

    # -- lifecycle ----------------------------------------------------------------------------

    async def migrate(self) -> None:
        migrations = load_migrations("postgres")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = int(
                await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            )
            for migration in migrations:
                if migration.version <= current:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                log.info("outbox_migrated", dialect="postgres", version=migration.version)
        if current > migrations[-1].version:
            log.warning("outbox_schema_newer", version=current, known=migrations[-1].version)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTx]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PostgresTx(conn)

    # -- relay --------------------------------------------------------------------------------

    async def due_shops(self, now: float) -> list[str]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT DISTINCT o.shop FROM outbox o WHERE {_claimable('$1')} ORDER BY o.shop",
                now,
            )
        return [str(r["shop"]) for r in rows]

    async def acquire_lane(self, shop: str, owner: str, lease_seconds: float, now: float) -> bool:
        async with self._pool.acquire() as conn:
            taken = await conn.fetchval(
                "INSERT INTO lanes AS l (shop, owner, lease_until) VALUES ($1, $2, $3)"
                " ON CONFLICT (shop) DO UPDATE SET owner = EXCLUDED.owner,"
                " lease_until = EXCLUDED.lease_until"
                " WHERE l.owner IS NULL OR l.owner = EXCLUDED.owner OR l.lease_until <= $4"
                " RETURNING shop",
                shop,
                owner,
                now + lease_seconds,
                now,
            )
        return taken is not None

    async def release_lane(self, shop: str, owner: str) -> bool:
        changed = await self._execute(
            "UPDATE lanes SET owner = NULL, lease_until = 0 WHERE shop = $1 AND owner = $2",
            shop,
            owner,
        )
        return changed == 1

    async def claim(
        self, shop: str, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[OutboxRow]:
        if limit <= 0:
            return []
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "WITH picked AS (SELECT o.id FROM outbox o"
                f" WHERE o.shop = $1 AND {_claimable('$4')}"
                " ORDER BY o.id LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " UPDATE outbox SET status = 'in_flight', lease_owner = $2, lease_until = $5,"
                " attempts = attempts + 1, updated_at = $4"
                f" FROM picked WHERE outbox.id = picked.id RETURNING {_qualified('outbox')}",
                shop,
                owner,
                limit,
                now,
                now + lease_seconds,
            )
        return sorted((_row(r) for r in rows), key=lambda r: r.id)

    async def reserve(
        self, shop: str, rate: float, burst: int, count: int, now: float
    ) -> list[float]:
        gcra_slots(0.0, 0.0, rate, burst, 0, now)  # validate before touching the database
        if count == 0:
            return []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO lanes (shop) VALUES ($1) ON CONFLICT (shop) DO NOTHING", shop
            )
            lane = await conn.fetchrow(
                "SELECT tat, not_before FROM lanes WHERE shop = $1 FOR UPDATE", shop
            )
            slots, tat = gcra_slots(lane["tat"], lane["not_before"], rate, burst, count, now)
            await conn.execute("UPDATE lanes SET tat = $2 WHERE shop = $1", shop, tat)
        return slots

    async def defer(self, shop: str, until: float) -> None:
        await self._execute(
            "INSERT INTO lanes AS l (shop, not_before) VALUES ($1, $2) ON CONFLICT (shop)"
            " DO UPDATE SET not_before = GREATEST(l.not_before, EXCLUDED.not_before)",
            shop,
            until,
        )

    async def mark_done(self, id: int, owner: str, now: float) -> bool:
        changed = await self._execute(
            "UPDATE outbox SET status = 'done', done_at = $3, updated_at = $3,"
            " lease_owner = NULL, lease_until = NULL"
            " WHERE id = $1 AND status = 'in_flight' AND lease_owner = $2",
            id,
            owner,
            now,
        )
        return changed == 1

    async def mark_retry(
        self,
        id: int,
        owner: str,
        next_attempt_at: float,
        error: str,
        now: float,
        *,
        sent: bool = True,
    ) -> bool:
        changed = await self._execute(
            "UPDATE outbox o SET status = CASE WHEN o.kind = 'set_stock' AND EXISTS ("
            "  SELECT 1 FROM outbox n WHERE n.shop = o.shop AND n.target = o.target"
            "  AND n.kind = 'set_stock' AND n.id > o.id AND n.status = 'pending')"
            " THEN 'superseded' ELSE 'pending' END,"
            " next_attempt_at = $3, last_error = $4, updated_at = $5,"
            " attempts = GREATEST(o.attempts - $6, 0),"
            " lease_owner = NULL, lease_until = NULL"
            " WHERE o.id = $1 AND o.status = 'in_flight' AND o.lease_owner = $2",
            id,
            owner,
            next_attempt_at,
            error,
            now,
            0 if sent else 1,
        )
        return changed == 1

    async def mark_dead(self, id: int, owner: str, error: str, now: float) -> bool:
        changed = await self._execute(
            "UPDATE outbox SET status = 'dead', last_error = $3, updated_at = $4,"
            " lease_owner = NULL, lease_until = NULL"
            " WHERE id = $1 AND status = 'in_flight' AND lease_owner = $2",
            id,
            owner,
            error,
            now,
        )
        return changed == 1

    # -- operators ----------------------------------------------------------------------------

    async def get(self, id: int) -> OutboxRow | None:
        async with self._pool.acquire() as conn:
            record = await conn.fetchrow(f"SELECT {ROW_COLUMNS} FROM outbox WHERE id = $1", id)
        return None if record is None else _row(record)

    async def list_rows(
        self, status: Status | None = None, shop: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {ROW_COLUMNS} FROM outbox"
                " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR shop = $2)"
                " ORDER BY id DESC LIMIT $3",
                None if status is None else str(status),
                shop,
                limit,
            )
        return [_row(r) for r in rows]

    async def retry(self, id: int, now: float) -> bool:
        changed = await self._execute(
            "UPDATE outbox o SET status = 'pending', attempts = 0, next_attempt_at = $2,"
            f" updated_at = $2 WHERE o.id = $1 AND o.status = 'dead' AND NOT ({_STALE})",
            id,
            now,
        )
        return changed == 1

    async def retry_all_dead(self, now: float, shop: str | None = None) -> int:
        return await self._execute(
            "UPDATE outbox o SET status = 'pending', attempts = 0, next_attempt_at = $1,"
            " updated_at = $1 WHERE o.status = 'dead' AND ($2::text IS NULL OR o.shop = $2)"
            f" AND NOT ({_STALE})",
            now,
            shop,
        )

    async def purge(self, older_than: timedelta, now: float) -> int:
        return await self._execute(
            "DELETE FROM outbox WHERE status IN ('done', 'dead', 'superseded') AND updated_at < $1",
            now - older_than.total_seconds(),
        )

    async def counts(self) -> dict[tuple[str, str], int]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT shop, status, count(*) AS n FROM outbox GROUP BY 1, 2")
        return {(str(r["shop"]), str(r["status"])): int(r["n"]) for r in rows}


def _qualified(table: str) -> str:
    return ", ".join(f"{table}.{c.strip()}" for c in ROW_COLUMNS.split(","))
