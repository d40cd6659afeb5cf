"""Send slots for one claimed batch: drawn from the shop's shared bucket, never past the lease.

A row may be sent only while its outcome can still be recorded under its lease: a request starts
no later than the row's *horizon*, ``lease_until - deadline - margin``, where ``deadline`` is the
one total timeout of a request (``relay.request_timeout``, connect to answer). The bucket is
asked for slots up to that horizon only, so a shop deferred far ahead (a long ``Retry-After``)
pushes nothing further into the bucket: the slots it would hand out could not be used anyway.
"""

from __future__ import annotations

from collections import deque

from bridge.config import RelayConfig
from bridge.outbox.store import OutboxRow, OutboxStore


def lease_for(settings: RelayConfig, batch_seconds: float, margin: float) -> float:
    """The row and lane lease to claim with: the configured one, but long enough that a batch's
    last slot plus one whole request and the recording of its outcome fit in it."""
    return max(settings.lease_seconds, settings.request_timeout + margin + batch_seconds)


def horizon(row: OutboxRow, deadline: float, margin: float) -> float:
    """The latest start of ``row``'s request: later, it could outlive the row's lease."""
    return (row.lease_until or 0.0) - deadline - margin


async def reserve(
    store: OutboxStore,
    shop: str,
    rate: float,
    burst: int,
    count: int,
    now: float,
    until: float,
) -> list[float]:
    """Up to ``count`` slots no later than ``until``; the bucket keeps only the slots handed out."""
    return await store.reserve(shop, rate, burst, count, now, horizon=until)


class Slots:
    """The slots of one batch, in order; more are drawn when a token fetch used one up."""

    def __init__(
        self, store: OutboxStore, shop: str, rate: float, burst: int, until: float
    ) -> None:
        self.store = store
        self.shop = shop
        self.rate = rate
        self.burst = burst
        self.until = until
        self._slots: deque[float] = deque()

    async def fill(self, count: int, now: float) -> None:
        self._slots.extend(
            await reserve(self.store, self.shop, self.rate, self.burst, count, now, self.until)
        )

    def extend(self, slots: list[float]) -> None:
        """Slots drawn already (with the claim)."""
        self._slots.extend(slots)

    async def next(self, now: float) -> float | None:
        """The next slot, or None when there is none within the horizon."""
        if not self._slots:
            await self.fill(1, now)
        if not self._slots:
            return None
        slot = self._slots.popleft()
        return slot if slot <= self.until else None
