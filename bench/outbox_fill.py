"""Set-up SQL of ``outbox_scale.py``: finished rows in bulk, one statement per dialect.

The rows look like what months of relaying leave behind: ``set_stock`` rows of the measured
shops and their targets, about 92% ``done``, 8% ``superseded``, 0.2% ``dead``, all updated
within the last day (so inside any retention: the purge must not be what keeps the outbox fast).
"""

from __future__ import annotations

# ruff: noqa: S608  # only this module's constants and integers go into the SQL
import sqlite3

import asyncpg

_STATUS = "CASE WHEN {i} % 500 = 0 THEN 'dead' WHEN {i} % 12 = 0 THEN 'superseded' ELSE 'done' END"


def _columns() -> str:
    return (
        "shop, kind, target, payload, idempotency_key, status, attempts, next_attempt_at,"
        " created_at, updated_at, done_at, superseding, priority, first_sent_at"
    )


def fill_sqlite(path: str, count: int, shops: int, now: float) -> None:
    """``count`` finished rows in one transaction (a recursive CTE, no Python per row)."""
    start = now - 86_400.0
    step = 86_000.0 / max(count, 1)
    status = _STATUS.format(i="i")
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        f" INSERT INTO outbox ({_columns()})"
        " SELECT printf('s%03d', i % ?), 'set_stock', 'variant:' || (i % 10000),"
        " json_object('command_id', 'fill-' || i, 'quantity', 7, 'variant', '' || (i % 10000),"
        "  'product', '1001'),"
        f" 'fill-' || i, {status}, 1, ? + i * ?, ? + i * ?, ? + i * ?,"
        f" CASE WHEN {status} = 'done' THEN ? + i * ? END, 1, 0, ? + i * ?"
        " FROM n"
    )
    params = (count, shops, *([start, step] * 5))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, params)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def fill_postgres(dsn: str, count: int, shops: int, now: float) -> None:
    """``count`` finished rows in one statement (``generate_series``), then ``ANALYZE``.

    ``ANALYZE`` stands for autovacuum, which analyses a table once a tenth of it changed; without
    it the planner would plan for the empty table the migration created.
    """
    start = now - 86_400.0
    step = 86_000.0 / max(count, 1)
    status = _STATUS.format(i="i")
    sql = (
        f"INSERT INTO outbox ({_columns()})"
        " SELECT 's' || lpad((i % $2)::text, 3, '0'), 'set_stock', 'variant:' || (i % 10000),"
        " jsonb_build_object('command_id', 'fill-' || i, 'quantity', 7,"
        "  'variant', (i % 10000)::text, 'product', '1001'),"
        f" 'fill-' || i, {status}, 1, $3 + i * $4, $3 + i * $4, $3 + i * $4,"
        f" CASE WHEN {status} = 'done' THEN $3 + i * $4 END, true, 0, $3 + i * $4"
        " FROM generate_series(1, $1::int) AS i"
    )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, count, shops, start, step)
        await conn.execute("ANALYZE outbox")
    finally:
        await conn.close()
