"""SQLite outbox store: the embedded default (one file, WAL, one writer at a time).

Every write runs in ``BEGIN IMMEDIATE``, which takes SQLite's single write lock up front, so several
relay *processes* on one file stay correct: claims, lane leases and the token bucket are
read-modify-write under that lock. Within one process the store serialises its callers on an
``asyncio.Lock`` because they share one connection.
"""

# ruff: noqa: S608  # SQL is composed only from this module's constant fragments

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
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
    split_sql,
)

log = get_logger(__name__)

BUSY_TIMEOUT_MS = 10_000
# Stores whose transaction is open in the current task: calling the store itself from inside its
# own transaction would wait forever on the store's lock, so it raises instead.
_OPEN: ContextVar[frozenset[int]] = ContextVar("bridge_outbox_sqlite_open", default=frozenset())

# A row `claim` may take: due, and the oldest live row of its (shop, target).
_CLAIMABLE = """
    ((o.status = 'pending' AND o.next_attempt_at <= :now)
     OR (o.status = 'in_flight' AND o.lease_until <= :now))
    AND NOT EXISTS (
        SELECT 1 FROM outbox p
        WHERE p.shop = o.shop AND p.target = o.target AND p.id < o.id
          AND p.status IN ('pending', 'in_flight'))
"""
# A dead set_stock row is stale once a newer set_stock for its target exists.
_STALE = """
    kind = 'set_stock' AND EXISTS (
        SELECT 1 FROM outbox n
        WHERE n.shop = outbox.shop AND n.target = outbox.target AND n.kind = 'set_stock'
          AND n.id > outbox.id AND n.status <> 'superseded')
"""
_LEASED = "id = :id AND status = 'in_flight' AND lease_owner = :owner"


def sqlite_path(dsn: str) -> str:
    """``sqlite:///rel/path`` -> ``rel/path``; ``sqlite:////abs/path`` -> ``/abs/path``."""
    prefix = "sqlite:///"
    if not dsn.startswith(prefix) or len(dsn) == len(prefix):
        raise OutboxError(
            "a SQLite outbox dsn looks like sqlite:///relative/path or sqlite:////abs/path"
        )
    return dsn[len(prefix) :]


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _row(record: sqlite3.Row) -> OutboxRow:
    return row_from_record(record, orjson.loads(record["payload"]))


class _SQLiteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def add(self, write: NewWrite, now: float) -> AddResult:
        cursor = await self._conn.execute(
            "INSERT INTO outbox (shop, kind, target, payload, idempotency_key, next_attempt_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            (
                write.shop,
                write.kind,
                write.target,
                _dumps(dict(write.payload)),
                write.idempotency_key,
                now,
                now,
                now,
            ),
        )
        inserted = await cursor.fetchone()
        await cursor.close()
        if inserted is None:
            existing = await self._conn.execute_fetchall(
                "SELECT id FROM outbox WHERE idempotency_key = ?", (write.idempotency_key,)
            )
            return AddResult(id=int(next(iter(existing))["id"]), duplicate=True)
        new_id = int(inserted["id"])
        if write.kind != SET_STOCK:
            return AddResult(id=new_id)
        older = await self._conn.execute_fetchall(
            "UPDATE outbox SET status = 'superseded', updated_at = ?"
            " WHERE shop = ? AND target = ? AND kind = 'set_stock' AND status = 'pending'"
            " AND id < ? RETURNING id",
            (now, write.shop, write.target, new_id),
        )
        superseded = max((int(r["id"]) for r in older), default=None)
        if superseded is not None:
            await self._conn.execute(
                "UPDATE outbox SET supersedes = ? WHERE id = ?", (superseded, new_id)
            )
        return AddResult(id=new_id, superseded=superseded)

    async def get_state(self, namespace: str, key: str) -> Any | None:
        rows = await self._conn.execute_fetchall(
            "SELECT value FROM consumer_state WHERE namespace = ? AND key = ?", (namespace, key)
        )
        for row in rows:
            return orjson.loads(row["value"])
        return None

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        await self._conn.execute(
            "INSERT INTO consumer_state (namespace, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
            (namespace, key, _dumps(value)),
        )


class SQLiteOutboxStore:
    """OutboxStore on one SQLite file (see module docstring)."""

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, dsn: str) -> SQLiteOutboxStore:
        path = sqlite_path(dsn)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open SQLite outbox {path!r}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            await conn.close()
            raise OutboxError(f"cannot open SQLite outbox {path!r}: {exc}") from exc
        return cls(conn, path)

    async def close(self) -> None:
        await self._conn.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _check_reentry(self) -> None:
        if id(self) in _OPEN.get():
            raise OutboxError("outbox store used inside its own open transaction: use the OutboxTx")

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: commit on exit, roll back on any exception."""
        self._check_reentry()
        async with self._lock:
            token = _OPEN.set(_OPEN.get() | {id(self)})
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    await self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # some errors end the transaction themselves
                        await self._conn.execute("ROLLBACK")
                    raise
            finally:
                _OPEN.reset(token)

    async def _fetch(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        self._check_reentry()
        async with self._lock:
            return list(await self._conn.execute_fetchall(sql, params))

    async def _change(self, sql: str, params: Any) -> int:
        async with self._write() as conn:
            cursor = await conn.execute(sql, params)
            count = cursor.rowcount
            await cursor.close()
        return count

    # -- lifecycle ----------------------------------------------------------------------------

    async def migrate(self) -> None:
        migrations = load_migrations("sqlite")
        async with self._write() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            rows = await conn.execute_fetchall(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version"
            )
            current = int(next(iter(rows))[0])
            for migration in migrations:
                if migration.version <= current:
                    continue
                for statement in split_sql(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at)"
                    " VALUES (?, ?, (julianday('now') - 2440587.5) * 86400.0)",
                    (migration.version, migration.name),
                )
                log.info("outbox_migrated", dialect="sqlite", version=migration.version)
        if current > migrations[-1].version:
            log.warning("outbox_schema_newer", version=current, known=migrations[-1].version)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTx]:
        async with self._write() as conn:
            yield _SQLiteTx(conn)

    # -- relay --------------------------------------------------------------------------------

    async def due_shops(self, now: float) -> list[str]:
        rows = await self._fetch(
            f"SELECT DISTINCT o.shop FROM outbox o WHERE {_CLAIMABLE} ORDER BY o.shop", {"now": now}
        )
        return [str(r["shop"]) for r in rows]

    async def acquire_lane(self, shop: str, owner: str, lease_seconds: float, now: float) -> bool:
        async with self._write() as conn:
            rows = await conn.execute_fetchall(
                "INSERT INTO lanes (shop, owner, lease_until) VALUES (:shop, :owner, :until)"
                " ON CONFLICT (shop) DO UPDATE SET owner = excluded.owner,"
                " lease_until = excluded.lease_until"
                " WHERE lanes.owner IS NULL OR lanes.owner = excluded.owner"
                " OR lanes.lease_until <= :now RETURNING shop",
                {"shop": shop, "owner": owner, "until": now + lease_seconds, "now": now},
            )
        return len(list(rows)) == 1

    async def release_lane(self, shop: str, owner: str) -> bool:
        changed = await self._change(
            "UPDATE lanes SET owner = NULL, lease_until = 0 WHERE shop = ? AND owner = ?",
            (shop, owner),
        )
        return changed == 1

    async def claim(
        self, shop: str, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[OutboxRow]:
        if limit <= 0:
            return []
        async with self._write() as conn:
            rows = await conn.execute_fetchall(
                "UPDATE outbox SET status = 'in_flight', lease_owner = :owner,"
                " lease_until = :until, attempts = attempts + 1, updated_at = :now"
                f" WHERE id IN (SELECT o.id FROM outbox o WHERE o.shop = :shop AND {_CLAIMABLE}"
                f" ORDER BY o.id LIMIT :limit) RETURNING {ROW_COLUMNS}",
                {
                    "owner": owner,
                    "until": now + lease_seconds,
                    "now": now,
                    "shop": shop,
                    "limit": limit,
                },
            )
        return sorted((_row(r) for r in rows), key=lambda r: r.id)

    async def reserve(
        self, shop: str, rate: float, burst: int, count: int, now: float
    ) -> list[float]:
        gcra_slots(0.0, 0.0, rate, burst, 0, now)  # validate before touching the database
        if count == 0:
            return []
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO lanes (shop) VALUES (?) ON CONFLICT DO NOTHING", (shop,)
            )
            rows = await conn.execute_fetchall(
                "SELECT tat, not_before FROM lanes WHERE shop = ?", (shop,)
            )
            lane = next(iter(rows))
            slots, tat = gcra_slots(lane["tat"], lane["not_before"], rate, burst, count, now)
            await conn.execute("UPDATE lanes SET tat = ? WHERE shop = ?", (tat, shop))
        return slots

    async def defer(self, shop: str, until: float) -> None:
        async with self._write() as conn:
            await conn.execute(
                "INSERT INTO lanes (shop, not_before) VALUES (:shop, :until) ON CONFLICT (shop)"
                " DO UPDATE SET not_before = MAX(lanes.not_before, excluded.not_before)",
                {"shop": shop, "until": until},
            )

    async def mark_done(self, id: int, owner: str, now: float) -> bool:
        changed = await self._change(
            "UPDATE outbox SET status = 'done', done_at = :now, updated_at = :now,"
            f" lease_owner = NULL, lease_until = NULL WHERE {_LEASED}",
            {"id": id, "owner": owner, "now": now},
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
        changed = await self._change(
            "UPDATE outbox SET status = CASE WHEN kind = 'set_stock' AND EXISTS ("
            "  SELECT 1 FROM outbox n WHERE n.shop = outbox.shop AND n.target = outbox.target"
            "  AND n.kind = 'set_stock' AND n.id > outbox.id AND n.status = 'pending')"
            " THEN 'superseded' ELSE 'pending' END,"
            " next_attempt_at = :next, last_error = :error, updated_at = :now,"
            " attempts = MAX(attempts - :undo, 0),"
            f" lease_owner = NULL, lease_until = NULL WHERE {_LEASED}",
            {
                "id": id, "owner": owner, "next": next_attempt_at, "error": error, "now": now,
                "undo": 0 if sent else 1,
            },
        )  # fmt: skip
        return changed == 1

    async def mark_dead(self, id: int, owner: str, error: str, now: float) -> bool:
        changed = await self._change(
            "UPDATE outbox SET status = 'dead', last_error = :error, updated_at = :now,"
            f" lease_owner = NULL, lease_until = NULL WHERE {_LEASED}",
            {"id": id, "owner": owner, "error": error, "now": now},
        )
        return changed == 1

    # -- operators ----------------------------------------------------------------------------

    async def get(self, id: int) -> OutboxRow | None:
        rows = await self._fetch(f"SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?", (id,))
        return _row(rows[0]) if rows else None

    async def list_rows(
        self, status: Status | None = None, shop: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        rows = await self._fetch(
            f"SELECT {ROW_COLUMNS} FROM outbox WHERE (:status IS NULL OR status = :status)"
            " AND (:shop IS NULL OR shop = :shop) ORDER BY id DESC LIMIT :limit",
            {"status": None if status is None else str(status), "shop": shop, "limit": limit},
        )
        return [_row(r) for r in rows]

    async def retry(self, id: int, now: float) -> bool:
        changed = await self._change(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = :now,"
            f" updated_at = :now WHERE id = :id AND status = 'dead' AND NOT ({_STALE})",
            {"id": id, "now": now},
        )
        return changed == 1

    async def retry_all_dead(self, now: float, shop: str | None = None) -> int:
        return await self._change(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = :now,"
            " updated_at = :now WHERE status = 'dead' AND (:shop IS NULL OR shop = :shop)"
            f" AND NOT ({_STALE})",
            {"shop": shop, "now": now},
        )

    async def purge(self, older_than: timedelta, now: float) -> int:
        return await self._change(
            "DELETE FROM outbox WHERE status IN ('done', 'dead', 'superseded') AND updated_at < ?",
            (now - older_than.total_seconds(),),
        )

    async def counts(self) -> dict[tuple[str, str], int]:
        rows = await self._fetch("SELECT shop, status, COUNT(*) AS n FROM outbox GROUP BY 1, 2")
        return {(str(r["shop"]), str(r["status"])): int(r["n"]) for r in rows}
