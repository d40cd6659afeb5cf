"""The connection seam every outbox statement runs through: a session of one connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Params = Mapping[str, Any]


class Record(Protocol):
    """A database row addressable by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Session(Protocol):
    """One connection, inside whatever transaction its opener started."""

    async def fetch(self, sql: str, params: Params) -> list[Record]:
        """Rows of a query (or of ``RETURNING``)."""

    async def execute(self, sql: str, params: Params) -> int:
        """Run a statement; the number of rows it changed."""
