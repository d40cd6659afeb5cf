"""The outbox operations, written once over a small connection seam (``Session``).

``SQLOutboxStore`` implements :class:`bridge.outbox.contract.OutboxStore` with the statements of
:mod:`bridge.outbox.policy`; a dialect store (``sqlite``, ``postgres``) only says how to open a
session for reading, for one write, and for a transaction.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any, ClassVar

from bridge.log import get_logger
from bridge.outbox.bucket import gcra_slots, validate_rate
from bridge.outbox.claims import claim_lanes_in, release_lanes_in
from bridge.outbox.migrations import load_migrations
from bridge.outbox.policy import Dialect, Statements
from bridge.outbox.rows import (
    AddResult,
    ClaimedLane,
    LaneClaim,
    NewWrite,
    OutboxRow,
    Status,
    validate_write,
)
from bridge.outbox.session import Params, Record, Session

log = get_logger(__name__)

MAX_DEFER_SECONDS = 3600.0


def decode_row(record: Record, dialect: Dialect) -> OutboxRow:
    """An OutboxRow from a record whose columns are ``policy.ROW_COLUMNS``."""
    optional = {c: record[c] for c in ("supersedes", "lease_until", "done_at")}
    return OutboxRow(
        id=int(record["id"]),
        shop=record["shop"],
        kind=record["kind"],
        target=record["target"],
        payload=dialect.decode_json(record["payload"]),
        idempotency_key=record["idempotency_key"],
        status=Status(record["status"]),
        attempts=int(record["attempts"]),
        next_attempt_at=float(record["next_attempt_at"]),
        last_error=record["last_error"],
        created_at=float(record["created_at"]),
        updated_at=float(record["updated_at"]),
        supersedes=None if optional["supersedes"] is None else int(optional["supersedes"]),
        lease_owner=record["lease_owner"],
        lease_until=None if optional["lease_until"] is None else float(optional["lease_until"]),
        done_at=None if optional["done_at"] is None else float(optional["done_at"]),
        superseding=bool(record["superseding"]),
        priority=int(record["priority"]),
    )


class SQLTx:
    """One consumer transaction (``OutboxTx``) on an open session."""

    def __init__(self, session: Session, sql: Statements) -> None:
        self._session = session
        self._sql = sql
        self._savepoints = 0

    async def add(self, write: NewWrite, now: float) -> AddResult:
        validate_write(write)
        s, d = self._sql, self._sql.dialect
        params = {
            "shop": write.shop, "kind": write.kind, "target": write.target,
            "payload": d.encode_json(dict(write.payload)), "key": write.idempotency_key,
            "superseding": bool(write.supersedes), "priority": write.priority, "now": now,
        }  # fmt: skip
        inserted = await self._session.fetch(s.insert, params)
        while not inserted:  # the key is known, unless its row was purged in between
            known = await self._known(write)
            if known is not None:
                return known
            inserted = await self._session.fetch(s.insert, params)
        new_id = int(inserted[0]["id"])
        if not write.supersedes:
            return AddResult(id=new_id)
        older = await self._session.fetch(s.supersede, params | {"id": new_id})
        superseded = max((int(r["id"]) for r in older), default=None)
        if superseded is not None:
            await self._session.execute(s.record_superseded, {"old": superseded, "id": new_id})
        return AddResult(id=new_id, superseded=superseded)

    async def _known(self, write: NewWrite) -> AddResult | None:
        """The shop has this key: a duplicate if the content agrees, else a conflict.

        None when the row vanished meanwhile (purged), so the caller inserts again.
        """
        params = {"shop": write.shop, "key": write.idempotency_key}
        rows = await self._session.fetch(self._sql.existing, params)
        if not rows:
            return None
        row = rows[0]
        same = (row["kind"], row["target"], self._sql.dialect.decode_json(row["payload"])) == (
            write.kind,
            write.target,
            dict(write.payload),
        )
        if same:
            return AddResult(id=int(row["id"]), duplicate=True)
        log.warning("outbox_key_conflict", shop=write.shop, outbox_id=int(row["id"]))
        return AddResult(id=int(row["id"]), conflict=True)

    async def first_sent(self, ids: Iterable[int]) -> dict[int, float | None]:
        found: dict[int, float | None] = {}
        for row_id in sorted(set(ids)):
            rows = await self._session.fetch(self._sql.first_sent, {"id": row_id})
            if rows:
                value = rows[0]["first_sent_at"]
                found[row_id] = None if value is None else float(value)
        return found

    async def get_state(self, namespace: str, key: str) -> Any | None:
        params = {"namespace": namespace, "key": key}
        d = self._sql.dialect
        if d.lock_state is not None:
            await self._session.execute(d.lock_state, params)
        rows = await self._session.fetch(self._sql.get_state, params)
        return d.decode_json(rows[0]["value"]) if rows else None

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        params = {"namespace": namespace, "key": key, "value": self._sql.dialect.encode_json(value)}
        await self._session.execute(self._sql.put_state, params)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[SQLTx]:
        """An exception inside rolls back to here only; the transaction stays usable."""
        self._savepoints += 1
        name = f"outbox_savepoint_{self._savepoints}"
        await self._session.execute(f"SAVEPOINT {name}", {})
        try:
            yield self
        except BaseException:
            await self._session.execute(f"ROLLBACK TO SAVEPOINT {name}", {})
            await self._session.execute(f"RELEASE SAVEPOINT {name}", {})
            raise
        else:
            await self._session.execute(f"RELEASE SAVEPOINT {name}", {})
        finally:
            self._savepoints -= 1


class SQLOutboxStore(ABC):
    """The outbox store; subclasses supply sessions and their dialect's ``Statements``."""

    sql: ClassVar[Statements]

    @abstractmethod
    def _read(self) -> AbstractAsyncContextManager[Session]:
        """A session for queries."""

    @abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Session]:
        """A transaction that holds the write lock it needs: commit on exit, roll back on error."""

    def _write_one(self) -> AbstractAsyncContextManager[Session]:
        """A session for one atomic write statement."""
        return self._write()

    @abstractmethod
    async def close(self) -> None: ...

    async def _fetch(self, sql: str, params: Params) -> list[Record]:
        async with self._read() as session:
            return await session.fetch(sql, params)

    async def _change(self, sql: str, params: Params) -> int:
        async with self._write_one() as session:
            return await session.execute(sql, params)

    # -- lifecycle ----------------------------------------------------------------------------

    async def migrate(self, *, upto: int | None = None) -> None:
        """Apply the migrations above the recorded version (up to ``upto``), in one transaction."""
        d = self.sql.dialect
        migrations = load_migrations(d.name)
        async with self._write() as session:
            if d.lock_migrations is not None:
                await session.execute(d.lock_migrations, {})
            await session.execute(d.schema_version_ddl, {})
            current = int((await session.fetch(self.sql.schema_version, {}))[0]["v"])
            for migration in migrations:
                if migration.version <= current or (upto is not None and migration.version > upto):
                    continue
                for statement in d.split(migration.sql):
                    await session.execute(statement, {})
                await session.execute(
                    self.sql.record_version, {"version": migration.version, "name": migration.name}
                )
                log.info("outbox_migrated", dialect=d.name, version=migration.version)
        if current > migrations[-1].version:
            log.warning("outbox_schema_newer", version=current, known=migrations[-1].version)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLTx]:
        """Commit on normal exit, roll back on exception."""
        async with self._write() as session:
            yield SQLTx(session, self.sql)

    # -- relay --------------------------------------------------------------------------------

    async def due_shops(self, now: float) -> list[str]:
        return [str(r["shop"]) for r in await self._fetch(self.sql.due_shops, {"now": now})]

    async def acquire_lane(self, shop: str, owner: str, lease_seconds: float, now: float) -> bool:
        params = {"shop": shop, "owner": owner, "until": now + lease_seconds, "now": now}
        async with self._write_one() as session:
            return len(await session.fetch(self.sql.acquire_lane, params)) == 1

    async def release_lane(
        self, shop: str, owner: str, *, not_before: float | None = None, now: float | None = None
    ) -> bool:
        if not_before is None:
            params = {"shop": shop, "owner": owner}
            return await self._change(self.sql.release_lane, params) == 1
        now = time.time() if now is None else now  # the handover and the release, one transaction
        return shop in await self.release_lanes(owner, {shop: not_before}, now)

    async def release_lanes(
        self, owner: str, lanes: Mapping[str, float | None], now: float
    ) -> set[str]:
        async with self._write() as session:
            return await release_lanes_in(session, self.sql, owner, lanes, now, MAX_DEFER_SECONDS)

    async def claim_lane(
        self,
        shop: str,
        owner: str,
        limit: int,
        lease_seconds: float,
        now: float,
        *,
        rate: float,
        burst: int,
        horizon: float | None = None,
    ) -> ClaimedLane | None:
        """``claim_lanes`` for one shop, keeping the lane even when nothing was due."""
        wanted = [LaneClaim(shop, limit, rate, burst, horizon)]
        return (await self.claim_lanes(owner, lease_seconds, now, wanted)).get(shop)

    async def claim_lanes(
        self,
        owner: str,
        lease_seconds: float,
        now: float,
        wanted: Sequence[LaneClaim],
        *,
        release_empty: bool = False,
    ) -> dict[str, ClaimedLane]:
        async with self._write() as session:
            taken = await claim_lanes_in(
                session, self.sql, owner, lease_seconds, now, wanted, release_empty=release_empty
            )
        return {shop: ClaimedLane(self._decoded(r), slots) for shop, (r, slots) in taken.items()}

    def _decoded(self, records: Sequence[Record]) -> list[OutboxRow]:
        rows = [decode_row(r, self.sql.dialect) for r in records]
        return sorted(rows, key=lambda r: (-r.priority, r.id))

    async def claim(
        self, shop: str, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[OutboxRow]:
        if limit <= 0:
            return []
        params = {
            "owner": owner, "until": now + lease_seconds, "now": now, "shop": shop, "limit": limit,
        }  # fmt: skip
        async with self._write_one() as session:
            records = await session.fetch(self.sql.claim, params)
        rows = [decode_row(r, self.sql.dialect) for r in records]
        return sorted(rows, key=lambda r: (-r.priority, r.id))

    async def reserve(
        self,
        shop: str,
        rate: float,
        burst: int,
        count: int,
        now: float,
        horizon: float | None = None,
    ) -> list[float]:
        validate_rate(rate, burst, count)
        if count == 0:
            return []
        async with self._write() as session:
            await session.execute(self.sql.ensure_lane, {"shop": shop})
            (lane,) = await session.fetch(self.sql.read_bucket, {"shop": shop})
            slots, tat = gcra_slots(
                float(lane["tat"]), float(lane["not_before"]), rate, burst, count, now, horizon
            )
            await session.execute(self.sql.write_tat, {"shop": shop, "tat": tat})
        return slots

    async def defer(
        self,
        shop: str,
        until: float,
        now: float | None = None,
        max_defer: float = MAX_DEFER_SECONDS,
    ) -> float:
        """No send time before ``until`` (capped at ``now + max_defer``); the deadline now set.

        ``now`` defaults to the caller's clock (``time.time()``); pass it explicitly.
        """
        if now is None:
            now = time.time()
        cap = now + max_defer
        capped = min(until, cap)
        async with self._write() as session:
            await session.execute(self.sql.defer, {"shop": shop, "until": capped, "cap": cap})
            (lane,) = await session.fetch(self.sql.read_bucket, {"shop": shop})
        return float(lane["not_before"])

    async def mark_done(self, id: int, owner: str, now: float) -> bool:
        return await self._change(self.sql.mark_done, {"id": id, "owner": owner, "now": now}) == 1

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
        params = {
            "id": id, "owner": owner, "next": next_attempt_at, "error": error, "now": now,
            "undo": 0 if sent else 1,
        }  # fmt: skip
        return await self._change(self.sql.mark_retry, params) == 1

    async def mark_done_many(self, ids: Sequence[int], owner: str, now: float) -> set[int]:
        if not ids:
            return set()
        params = {"ids": self.sql.dialect.encode_ids(sorted(set(ids))), "owner": owner, "now": now}
        async with self._write_one() as session:
            return {int(r["id"]) for r in await session.fetch(self.sql.mark_done_many, params)}

    async def mark_retry_many(
        self,
        ids: Sequence[int],
        owner: str,
        next_attempt_at: float,
        error: str,
        now: float,
        *,
        sent: bool = True,
    ) -> set[int]:
        if not ids:
            return set()
        params = {
            "ids": self.sql.dialect.encode_ids(sorted(set(ids))), "owner": owner,
            "next": next_attempt_at, "error": error, "now": now, "undo": 0 if sent else 1,
        }  # fmt: skip
        async with self._write_one() as session:
            return {int(r["id"]) for r in await session.fetch(self.sql.mark_retry_many, params)}

    async def mark_dead(self, id: int, owner: str, error: str, now: float) -> bool:
        params = {"id": id, "owner": owner, "error": error, "now": now}
        return await self._change(self.sql.mark_dead, params) == 1

    # -- operators ----------------------------------------------------------------------------

    async def get(self, id: int) -> OutboxRow | None:
        rows = await self._fetch(self.sql.get, {"id": id})
        return decode_row(rows[0], self.sql.dialect) if rows else None

    async def list_rows(
        self, status: Status | None = None, shop: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        params = {"status": None if status is None else str(status), "shop": shop, "limit": limit}
        return [
            decode_row(r, self.sql.dialect) for r in await self._fetch(self.sql.list_rows, params)
        ]

    async def retry(self, id: int, now: float) -> bool:
        return await self._revive(self.sql.retry, {"id": id, "now": now}) == 1

    async def retry_all_dead(self, now: float, shop: str | None = None) -> int:
        return await self._revive(self.sql.retry_all_dead, {"shop": shop, "now": now})

    async def _revive(self, sql: str, params: Params) -> int:
        """Dead rows back to pending; their shops' deferrals end now. The number revived."""
        async with self._write() as session:
            revived = await session.fetch(sql, params)
            for shop in sorted({str(r["shop"]) for r in revived}):
                await session.execute(self.sql.unstick_lane, {"shop": shop, "now": params["now"]})
        return len(revived)

    async def purge(self, older_than: timedelta, now: float, *, limit: int | None = None) -> int:
        cutoff = now - older_than.total_seconds()
        if limit is None:
            return await self._change(self.sql.purge, {"cutoff": cutoff})
        return await self._change(self.sql.purge_batch, {"cutoff": cutoff, "limit": limit})

    async def counts(self) -> dict[tuple[str, str], int]:
        rows = await self._fetch(self.sql.counts, {})
        return {(str(r["shop"]), str(r["status"])): int(r["n"]) for r in rows}

    async def depth(self) -> dict[tuple[str, str], int]:
        rows = await self._fetch(self.sql.depth, {})
        return {(str(r["shop"]), str(r["status"])): int(r["n"]) for r in rows}
