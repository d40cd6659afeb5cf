"""PostgreSQL outbox store: production, shared by many relay replicas through an asyncpg pool.

Claims use ``FOR UPDATE SKIP LOCKED`` so replicas never wait on each other's rows; lane leases and
the token bucket are single-row upserts or ``SELECT … FOR UPDATE`` read-modify-writes, so the
per-shop rate limit holds across every replica. JSON columns are ``jsonb`` (orjson codec).
Every statement has ``command_timeout`` and taking a pooled connection ``acquire_timeout``; both
end in an ``OutboxError`` that says which limit was hit.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from bridge.outbox.engine import SQLOutboxStore
from bridge.outbox.migrations import whole_script
from bridge.outbox.policy import Dialect, Statements
from bridge.outbox.rows import OutboxError
from bridge.outbox.session import Params, Record

COMMAND_TIMEOUT = 30.0
ACQUIRE_TIMEOUT = 10.0
# pg_advisory_xact_lock key serialising concurrent `migrate()` calls ("cbridge1" as an integer).
MIGRATION_LOCK = 0x6362726964676531
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _as_is(value: Any) -> Any:
    return value  # the connection's jsonb codec encodes and decodes


POSTGRES = Dialect(
    name="postgres",
    greatest="GREATEST",
    least="LEAST",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    lock_row=" FOR UPDATE",
    now_sql="now()",
    schema_version_ddl=(
        "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
        " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    ),
    split=whole_script,
    encode_json=_as_is,
    decode_json=_as_is,
    in_ids="id = ANY(CAST(:ids AS bigint[]))",
    encode_ids=list,
    shop_list="SELECT unnest(CAST(:shops AS text[])) AS shop",
    shop_values=(
        "SELECT * FROM unnest(CAST(:shops AS text[]), CAST(:values AS double precision[]))"
        " AS pairs (shop, value)"
    ),
    encode_list=list,
    lateral=True,
    # Lock the key (present or not) until the transaction ends: consumers read, change and
    # write state, and READ COMMITTED alone would let two of them lose an update.
    lock_state="SELECT pg_advisory_xact_lock(hashtextextended(:namespace || chr(31) || :key, 0))",
    lock_migrations=f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})",
)


@lru_cache(maxsize=256)
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """``… :shop … :now … :shop`` -> ``… $1 … $2 … $1`` and the names in ``$n`` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


async def _init_connection(conn: Any) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
    )


def _count(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3`` or ``DELETE 0``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _Session:
    def __init__(self, conn: Any, command_timeout: float) -> None:
        self._conn = conn
        self._timeout = command_timeout

    def _args(self, sql: str, params: Params) -> tuple[str, list[Any]]:
        if not params:
            return sql, []
        text, names = positional(sql)
        return text, [params[n] for n in names]

    async def fetch(self, sql: str, params: Params) -> list[Record]:
        text, args = self._args(sql, params)
        try:
            return list(await self._conn.fetch(text, *args))
        except TimeoutError as exc:
            raise self._timed_out() from exc

    async def execute(self, sql: str, params: Params) -> int:
        text, args = self._args(sql, params)
        try:
            return _count(await self._conn.execute(text, *args))
        except TimeoutError as exc:
            raise self._timed_out() from exc

    def _timed_out(self) -> OutboxError:
        return OutboxError(
            f"a PostgreSQL outbox statement ran longer than command_timeout ({self._timeout:g} s)"
        )


class PostgresOutboxStore(SQLOutboxStore):
    """OutboxStore on PostgreSQL (see module docstring)."""

    sql = Statements(POSTGRES)

    def __init__(self, pool: Any, *, command_timeout: float, acquire_timeout: float) -> None:
        self._pool = pool
        self.command_timeout = command_timeout
        self.acquire_timeout = acquire_timeout

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = COMMAND_TIMEOUT,
        acquire_timeout: float = ACQUIRE_TIMEOUT,
    ) -> PostgresOutboxStore:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                command_timeout=command_timeout,
                timeout=acquire_timeout,  # connecting
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The message names host/database at most, never the password in the dsn.
            raise OutboxError(f"cannot connect to the PostgreSQL outbox: {exc}") from exc
        return cls(pool, command_timeout=command_timeout, acquire_timeout=acquire_timeout)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        try:
            conn = await self._pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError as exc:
            raise OutboxError(
                f"no PostgreSQL outbox connection free within acquire_timeout"
                f" ({self.acquire_timeout:g} s): every pooled connection is busy"
            ) from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Session]:
        async with self._connection() as conn:
            yield _Session(conn, self.command_timeout)

    @asynccontextmanager
    async def _write_one(self) -> AsyncIterator[_Session]:
        async with self._connection() as conn:  # one statement is atomic on its own
            yield _Session(conn, self.command_timeout)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_Session]:
        async with self._connection() as conn, conn.transaction():
            yield _Session(conn, self.command_timeout)
