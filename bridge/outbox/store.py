"""The outbox store contract: value types, the ``OutboxStore`` Protocol and ``open_store``.

Two implementations honour it: :mod:`bridge.outbox.sqlite` (embedded default) and
:mod:`bridge.outbox.postgres` (production, many relay replicas). The invariants are written down in
``docs/outbox.md`` and pinned by ``tests/outbox/test_contract.py``, which runs against both.

Times are Unix seconds as ``float`` everywhere and are always passed in by the caller (``now``), so
that tests never sleep and every replica agrees on what "due" means only through the database.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from importlib import resources
from typing import Any, Protocol

from bridge.errors import BridgeError

SET_STOCK = "set_stock"


class OutboxError(BridgeError):
    """The outbox database cannot be opened, migrated or used as asked."""


class Status(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    DEAD = "dead"
    SUPERSEDED = "superseded"


TERMINAL = (Status.DONE, Status.DEAD, Status.SUPERSEDED)


@dataclass(frozen=True, slots=True)
class NewWrite:
    """A write a consumer wants sent; ``target`` is a key such as ``variant:5001``, ``group:77``."""

    shop: str
    kind: str
    target: str
    payload: Mapping[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class AddResult:
    """The new row id (the existing one if ``duplicate``) and the id it superseded, if any."""

    id: int
    duplicate: bool = False
    superseded: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    shop: str
    kind: str
    target: str
    payload: Mapping[str, Any]
    idempotency_key: str
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    supersedes: int | None
    lease_owner: str | None
    lease_until: float | None
    done_at: float | None


ROW_COLUMNS = (
    "id, shop, kind, target, payload, idempotency_key, status, attempts, next_attempt_at, "
    "last_error, created_at, updated_at, supersedes, lease_owner, lease_until, done_at"
)


class Record(Protocol):
    """A database row addressable by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


def row_from_record(record: Record, payload: Mapping[str, Any]) -> OutboxRow:
    """Build an OutboxRow from a DB record whose columns are ROW_COLUMNS (payload decoded)."""
    return OutboxRow(
        id=int(record["id"]),
        shop=record["shop"],
        kind=record["kind"],
        target=record["target"],
        payload=payload,
        idempotency_key=record["idempotency_key"],
        status=Status(record["status"]),
        attempts=int(record["attempts"]),
        next_attempt_at=float(record["next_attempt_at"]),
        last_error=record["last_error"],
        created_at=float(record["created_at"]),
        updated_at=float(record["updated_at"]),
        supersedes=None if record["supersedes"] is None else int(record["supersedes"]),
        lease_owner=record["lease_owner"],
        lease_until=None if record["lease_until"] is None else float(record["lease_until"]),
        done_at=None if record["done_at"] is None else float(record["done_at"]),
    )


class OutboxTx(Protocol):
    """One consumer transaction: outbox rows and consumer state commit (or roll back) together."""

    async def add(self, write: NewWrite, now: float) -> AddResult:
        """Insert ``write`` due at ``now``; a known idempotency key is a duplicate, not an error.

        A new ``set_stock`` row supersedes the *pending* rows of the same (shop, target).
        """

    async def get_state(self, namespace: str, key: str) -> Any | None:
        """The JSON value stored under (namespace, key), or None.

        The key stays locked until the transaction ends, so concurrent read-modify-write of the
        same key from several consumers is serialised (read several keys in a fixed order).
        """

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under (namespace, key), replacing any previous one."""


class OutboxStore(Protocol):
    """The transactional outbox. See docs/outbox.md for the invariants."""

    async def migrate(self) -> None:
        """Apply the pending versioned migrations; safe to call from every process at start."""

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[OutboxTx]:
        """Commit on normal exit, roll back on exception."""

    # -- relay --------------------------------------------------------------------------------

    async def due_shops(self, now: float) -> list[str]:
        """Shops that have at least one row ``claim`` would return at ``now``."""

    async def acquire_lane(self, shop: str, owner: str, lease_seconds: float, now: float) -> bool:
        """Take (or renew) the shop's lane lease; an expired lease can be taken over."""

    async def release_lane(self, shop: str, owner: str) -> bool:
        """Give the lane up; False when ``owner`` did not hold it."""

    async def claim(
        self, shop: str, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows of ``shop``, oldest first, at most one per target."""

    async def reserve(
        self, shop: str, rate: float, burst: int, count: int, now: float
    ) -> list[float]:
        """``count`` send times from the shop's shared token bucket (GCRA), in ascending order."""

    async def defer(self, shop: str, until: float) -> None:
        """No send time before ``until`` (Retry-After) for any relay."""

    async def mark_done(self, id: int, owner: str, now: float) -> bool: ...

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
        """Back to pending (or superseded if a newer set_stock for its target is pending).

        ``sent=False`` returns a row that was claimed but never sent: its claim is not an attempt.
        """

    async def mark_dead(self, id: int, owner: str, error: str, now: float) -> bool: ...

    # -- operators ----------------------------------------------------------------------------

    async def get(self, id: int) -> OutboxRow | None: ...

    async def list_rows(
        self, status: Status | None = None, shop: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Newest first."""

    async def retry(self, id: int, now: float) -> bool:
        """dead -> pending, attempts reset; False if not dead or a newer set_stock made it stale."""

    async def retry_all_dead(self, now: float, shop: str | None = None) -> int: ...

    async def purge(self, older_than: timedelta, now: float) -> int:
        """Delete done/dead/superseded rows last updated before ``now - older_than``."""

    async def counts(self) -> dict[tuple[str, str], int]:
        """Row count by (shop, status)."""


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


# -- shared helpers ---------------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The versioned ``NNNN_name.sql`` files of ``dialect`` (sqlite | postgres), in order."""
    folder = resources.files("bridge.outbox").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if not found or versions != list(range(1, len(found) + 1)):
        raise OutboxError(f"{dialect} migrations must be numbered 0001, 0002, … got {versions}")
    return found


def split_sql(script: str) -> list[str]:
    """Split a SQLite script into complete statements (``executescript`` would commit)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            text = buffer.strip()
            if text.strip(";").strip():
                statements.append(text)
            buffer = ""
    if buffer.strip(";").strip():
        raise OutboxError(f"incomplete SQL statement at the end of a migration: {buffer[:60]!r}")
    return statements


def gcra_slots(
    tat: float, not_before: float, rate: float, burst: int, count: int, now: float
) -> tuple[list[float], float]:
    """Send times for ``count`` requests and the new theoretical arrival time (pure)."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if burst < 1:
        raise ValueError(f"burst must be >= 1, got {burst}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    interval = 1.0 / rate
    tolerance = (burst - 1) * interval
    slots: list[float] = []
    for _ in range(count):
        send = max(now, not_before, tat - tolerance)
        slots.append(send)
        tat = max(tat, send) + interval
    return slots, tat
