"""The outbox's three roles as narrow Protocols: consumer transaction, relay, operator.

``OutboxStore`` is their union plus the lifecycle. Both implementations
(:mod:`bridge.outbox.sqlite`, :mod:`bridge.outbox.postgres`) honour it; the invariants are written
down in docs/outbox.md and pinned by tests/outbox/, which run against both.

Times are Unix seconds as ``float``, always passed in by the caller (``now``), so that tests never
sleep and every replica agrees on what "due" means only through the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Protocol

from bridge.outbox.rows import (
    AddResult,
    ClaimedLane,
    LaneClaim,
    NewWrite,
    OutboxRow,
    Status,
)


class OutboxTx(Protocol):
    """One consumer transaction: outbox rows and consumer state commit (or roll back) together."""

    async def add(self, write: NewWrite, now: float) -> AddResult:
        """Insert ``write`` due at ``now`` (raises InvalidWrite before any SQL if it is invalid).

        A known (shop, idempotency key) with the same kind, target and payload is a ``duplicate``;
        with different content a ``conflict`` (nothing inserted). A ``supersedes`` write marks the
        *pending* superseding rows of its (shop, target, kind) superseded.
        """

    async def get_state(self, namespace: str, key: str) -> Any | None:
        """The JSON value stored under (namespace, key), or None.

        The key stays locked until the transaction ends, so concurrent read-modify-write of the
        same key from several consumers is serialised (read several keys in a fixed order).
        """

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under (namespace, key), replacing any previous one."""

    async def first_sent(self, ids: Iterable[int]) -> dict[int, float | None]:
        """When each known row of ``ids`` was first claimed for sending (None: never).

        A platform can only echo a write after it was sent; inventory sync uses this to tell a
        sale that happens to leave the value of one of our writes from that write's echo.
        """

    def savepoint(self) -> AbstractAsyncContextManager[OutboxTx]:
        """An exception inside rolls back to the savepoint only; the transaction stays usable."""


class RelayStore(Protocol):
    """What the relay needs: due shops, lanes, claims, the shared bucket and the outcomes."""

    async def due_shops(self, now: float) -> list[str]:
        """Shops that have at least one row ``claim`` would return at ``now``."""

    async def acquire_lane(self, shop: str, owner: str, lease_seconds: float, now: float) -> bool:
        """Take (or renew) the shop's lane lease; an expired lease can be taken over."""

    async def release_lane(
        self, shop: str, owner: str, *, not_before: float | None = None, now: float | None = None
    ) -> bool:
        """Give the lane up; False when ``owner`` did not hold it. ``not_before``: in the same
        transaction, no send time before it for the next holder (``defer``, capped past ``now``)."""

    async def release_lanes(
        self, owner: str, lanes: Mapping[str, float | None], now: float
    ) -> set[str]:
        """``release_lane`` of many lanes in one transaction, each with its ``not_before`` (None:
        no handover); the shops whose lanes ``owner`` held and gave up."""

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
        """``acquire_lane``, ``claim`` and ``reserve`` of one slot per claimed row, in one
        transaction; None (and nothing claimed) when another relay holds the lane."""

    async def claim_lanes(
        self,
        owner: str,
        lease_seconds: float,
        now: float,
        wanted: Sequence[LaneClaim],
        *,
        release_empty: bool = False,
    ) -> dict[str, ClaimedLane]:
        """``claim_lane`` for many shops in one transaction: the lanes taken, by shop (a shop
        another relay holds is absent; with ``release_empty`` so is one with nothing due, its lane
        released again in the same transaction)."""

    async def claim(
        self, shop: str, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows of ``shop``, priority then age, one per target."""

    async def reserve(
        self,
        shop: str,
        rate: float,
        burst: int,
        count: int,
        now: float,
        horizon: float | None = None,
    ) -> list[float]:
        """Up to ``count`` send times (GCRA), ascending; none later than ``horizon``."""

    async def defer(
        self, shop: str, until: float, now: float | None = None, max_defer: float = ...
    ) -> float:
        """No send time before ``until`` (at most ``max_defer`` past ``now``) for any relay."""

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
        """Back to pending (or superseded if a newer superseding row replaced it).

        ``sent=False`` returns a row that was claimed but never sent: its claim is not an attempt.
        """

    async def mark_done_many(self, ids: Sequence[int], owner: str, now: float) -> set[int]:
        """``mark_done`` for many rows in one statement; the ids marked (the rest: lease lost)."""

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
        """``mark_retry`` for many rows with one due time and error, in one statement; the ids
        returned (the rest: lease lost)."""

    async def mark_dead(self, id: int, owner: str, error: str, now: float) -> bool: ...

    async def counts(self) -> dict[tuple[str, str], int]:
        """Row count by (shop, status)."""

    async def depth(self) -> dict[tuple[str, str], int]:
        """Row count by (shop, status) of the pending, in-flight and dead rows only: cheap
        however many finished rows the outbox holds (the relay's depth gauge)."""


class OperatorStore(Protocol):
    """What ``commerce-bridge outbox list|retry|purge`` needs."""

    async def get(self, id: int) -> OutboxRow | None: ...

    async def list_rows(
        self, status: Status | None = None, shop: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Newest first."""

    async def retry(self, id: int, now: float) -> bool:
        """dead -> pending, attempts reset, the shop's deferral ended; False if not dead or
        outdated by a newer superseding row."""

    async def retry_all_dead(self, now: float, shop: str | None = None) -> int: ...

    async def purge(self, older_than: timedelta, now: float, *, limit: int | None = None) -> int:
        """Delete done/dead/superseded rows last updated before ``now - older_than`` (at most
        ``limit``, the oldest first); the number deleted."""

    async def counts(self) -> dict[tuple[str, str], int]:
        """Row count by (shop, status)."""


class OutboxStore(RelayStore, OperatorStore, Protocol):
    """The transactional outbox: the three roles and the lifecycle. See docs/outbox.md."""

    async def migrate(self) -> None:
        """Apply the pending versioned migrations; safe to call from every process at start."""

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[OutboxTx]:
        """Commit on normal exit, roll back on exception."""
