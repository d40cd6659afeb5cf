"""Send slots and the lease horizon (pure arithmetic; stores doubled in memory)."""

from __future__ import annotations

from typing import cast

from bridge.config import RelayConfig
from bridge.outbox.bucket import gcra_slots
from bridge.outbox.store import OutboxRow, OutboxStore, Status
from bridge.relay.slots import Slots, horizon, lease_for

NOW = 1_700_000_000.0


class _Bucket:
    """One shop's GCRA bucket, as the stores keep it."""

    def __init__(self, not_before: float = 0.0) -> None:
        self.tat = 0.0
        self.not_before = not_before
        self.calls: list[tuple[int, float | None]] = []


class HorizonStore(_Bucket):
    """reserve(..., horizon): slots past the horizon are neither handed out nor booked."""

    async def reserve(
        self,
        shop: str,
        rate: float,
        burst: int,
        count: int,
        now: float,
        horizon: float | None = None,
    ) -> list[float]:
        self.calls.append((count, horizon))
        handed: list[float] = []
        for _ in range(count):
            (slot,), tat = gcra_slots(self.tat, self.not_before, rate, burst, 1, now)
            if horizon is not None and slot > horizon:
                break
            handed.append(slot)
            self.tat = tat
        return handed


def claimed(lease_until: float) -> OutboxRow:
    return OutboxRow(
        1, "s", "set_stock", "variant:1", {}, "k", Status.IN_FLIGHT, 1, NOW, None, NOW, NOW,
        None, "relay-1", lease_until, None,
    )  # fmt: skip


def test_the_lease_fits_a_batch_and_one_whole_request() -> None:
    """A lease shorter than deadline + margin + a batch is lengthened; a longer one is kept."""
    assert 13.0 == lease_for(RelayConfig(lease_seconds=5.0, request_timeout=10.0), 2.0, 1.0)
    assert 30.0 == lease_for(RelayConfig(lease_seconds=30.0, request_timeout=10.0), 2.0, 1.0)


def test_horizon_leaves_the_deadline_and_the_margin() -> None:
    """The last start of a request is lease_until - deadline - margin."""
    assert NOW + 19.0 == horizon(claimed(NOW + 30.0), 10.0, 1.0)


async def test_a_store_with_a_horizon_books_nothing_past_it() -> None:
    """Deferred 60 s ahead, a batch gets no slot, and the bucket is left as it was."""
    store = HorizonStore(not_before=NOW + 60.0)
    slots = Slots(cast(OutboxStore, store), "s", 5.0, 1, NOW + 19.0)
    await slots.fill(10, NOW)
    assert (None, 0.0, [(10, NOW + 19.0), (1, NOW + 19.0)]) == (
        await slots.next(NOW),
        store.tat,
        store.calls,
    )


async def test_slots_come_in_order_and_more_are_drawn_when_used_up() -> None:
    """A token fetch uses a slot: the batch draws one more, after the others."""
    store = HorizonStore()
    slots = Slots(cast(OutboxStore, store), "s", 5.0, 1, NOW + 19.0)
    await slots.fill(2, NOW)
    drawn = [await slots.next(NOW) for _ in range(3)]
    assert [NOW, NOW + 0.2, NOW + 0.4] == drawn
    assert [(2, NOW + 19.0), (1, NOW + 19.0)] == store.calls
