"""``open_store``: the outbox store a dsn names. Implementations load only when asked for."""

from __future__ import annotations

from bridge.outbox.contract import OutboxStore
from bridge.outbox.rows import OutboxError


async def open_store(dsn: str) -> OutboxStore:
    """Connect to ``sqlite:///path`` or ``postgresql://…``. Call ``migrate()`` before use."""
    if dsn.startswith("sqlite:"):
        from bridge.outbox.sqlite import SQLiteOutboxStore

        return await SQLiteOutboxStore.open(dsn)
    if dsn.startswith(("postgresql://", "postgres://")):
        from bridge.outbox.postgres import PostgresOutboxStore

        return await PostgresOutboxStore.open(dsn)
    raise OutboxError(
        f"unsupported outbox dsn {dsn.split(':', 1)[0]!r}: use sqlite:/// or postgresql://"
    )
