"""Outbox contract, part 2: per-shop lane leases and the shared token bucket."""

from __future__ import annotations

import asyncio

import pytest

from bridge.outbox import OutboxStore
from tests.outbox.conftest import OpenStore
from tests.outbox.helpers import T0

LEASE = 30.0


async def test_lane_is_exclusive_while_its_lease_lives(store: OutboxStore) -> None:
    """Only one relay holds a shop's lane; others are refused until the lease ends."""
    assert True is await store.acquire_lane("shop-a", "relay-1", LEASE, T0)
    assert False is await store.acquire_lane("shop-a", "relay-2", LEASE, T0 + LEASE - 1)
    assert True is await store.acquire_lane("shop-b", "relay-2", LEASE, T0)


async def test_owner_renews_its_lane(store: OutboxStore) -> None:
    """Acquiring again as the owner extends the lease."""
    await store.acquire_lane("shop-a", "relay-1", LEASE, T0)
    assert True is await store.acquire_lane("shop-a", "relay-1", LEASE, T0 + 20)
    assert False is await store.acquire_lane("shop-a", "relay-2", LEASE, T0 + LEASE + 1)


async def test_expired_lane_is_taken_over(store: OutboxStore) -> None:
    """A lane whose lease expired goes to the next relay, and the old owner loses it."""
    await store.acquire_lane("shop-a", "relay-1", LEASE, T0)
    assert True is await store.acquire_lane("shop-a", "relay-2", LEASE, T0 + LEASE)
    assert False is await store.release_lane("shop-a", "relay-1")
    assert False is await store.acquire_lane("shop-a", "relay-1", LEASE, T0 + LEASE + 1)


async def test_released_lane_is_free_at_once(store: OutboxStore) -> None:
    """Releasing a lane lets another relay take it before the lease would have ended."""
    await store.acquire_lane("shop-a", "relay-1", LEASE, T0)
    assert True is await store.release_lane("shop-a", "relay-1")
    assert True is await store.acquire_lane("shop-a", "relay-2", LEASE, T0 + 1)


async def test_two_processes_racing_for_a_lane_one_wins(
    store: OutboxStore, open_other: OpenStore
) -> None:
    """Concurrent acquisitions of a free lane by two processes grant it exactly once."""
    other = await open_other()
    won = await asyncio.gather(
        store.acquire_lane("shop-a", "relay-1", LEASE, T0),
        other.acquire_lane("shop-a", "relay-2", LEASE, T0),
    )
    assert [False, True] == sorted(won)


async def test_reserve_spaces_slots_one_interval_apart(store: OutboxStore) -> None:
    """Without burst, send times are 1/rate apart, starting now, continuing across calls."""
    assert [T0, T0 + 0.25, T0 + 0.5] == await store.reserve("shop-a", 4.0, 1, 3, T0)
    assert [T0 + 0.75] == await store.reserve("shop-a", 4.0, 1, 1, T0 + 0.1)
    assert [T0 + 10.0] == await store.reserve("shop-a", 4.0, 1, 1, T0 + 10.0)


async def test_reserve_allows_burst_then_spaces(store: OutboxStore) -> None:
    """`burst` sends go at once, the rest follow at the rate; idle time refills the bucket."""
    assert [T0, T0, T0, T0 + 1, T0 + 2] == await store.reserve("shop-a", 1.0, 3, 5, T0)
    assert [T0 + 10, T0 + 10, T0 + 10] == await store.reserve("shop-a", 1.0, 3, 3, T0 + 10)


async def test_shops_have_separate_buckets(store: OutboxStore) -> None:
    """One shop's reservations do not delay another's."""
    await store.reserve("shop-a", 1.0, 1, 5, T0)
    assert [T0] == await store.reserve("shop-b", 1.0, 1, 1, T0)


async def test_bucket_is_shared_by_processes(store: OutboxStore, open_other: OpenStore) -> None:
    """Concurrent reservations from two processes never yield slots closer than 1/rate."""
    other = await open_other()
    batches = await asyncio.gather(
        *(s.reserve("shop-a", 4.0, 1, 3, T0) for s in [store, other, store, other])
    )
    assert [T0 + 0.25 * i for i in range(12)] == sorted(t for batch in batches for t in batch)


async def test_defer_holds_every_send_until_retry_after(store: OutboxStore) -> None:
    """After defer(until), no slot is earlier than until, even with burst left."""
    await store.defer("shop-a", T0 + 30)
    await store.defer("shop-a", T0 + 5)  # an earlier deadline never shortens the wait
    assert [T0 + 30, T0 + 30] == await store.reserve("shop-a", 1.0, 2, 2, T0)


async def test_reserve_zero_is_empty_and_bad_rates_are_refused(store: OutboxStore) -> None:
    """count 0 reserves nothing; a non-positive rate or burst is a programming error."""
    assert [] == await store.reserve("shop-a", 5.0, 1, 0, T0)
    with pytest.raises(ValueError, match="rate"):
        await store.reserve("shop-a", 0.0, 1, 1, T0)
    with pytest.raises(ValueError, match="burst"):
        await store.reserve("shop-a", 5.0, 0, 1, T0)
    assert [T0] == await store.reserve("shop-a", 5.0, 1, 1, T0)


async def test_defer_is_capped_at_max_defer_past_now(store: OutboxStore) -> None:
    """A Retry-After of a day holds sends for at most max_defer (default one hour) past now."""
    assert T0 + 3600 == await store.defer("shop-a", T0 + 86400, now=T0)
    assert [T0 + 3600] == await store.reserve("shop-a", 1.0, 1, 1, T0)
    assert T0 + 10 == await store.defer("shop-b", T0 + 600, now=T0, max_defer=10.0)
    assert [T0 + 10] == await store.reserve("shop-b", 1.0, 1, 1, T0)


async def test_defer_pulls_back_a_deadline_beyond_the_cap(store: OutboxStore) -> None:
    """A deadline already further out than now + max_defer is brought back to the cap."""
    await store.defer("shop-a", T0 + 3000, now=T0)
    assert T0 + 100 + 60 == await store.defer("shop-a", T0 + 5, now=T0 + 100, max_defer=60.0)


async def test_reserve_hands_out_nothing_past_the_horizon(store: OutboxStore) -> None:
    """Slots later than the horizon are not returned and not taken from the bucket."""
    assert [T0, T0 + 1, T0 + 2] == await store.reserve("shop-a", 1.0, 1, 5, T0, horizon=T0 + 2)
    assert [T0 + 3] == await store.reserve("shop-a", 1.0, 1, 1, T0)


async def test_reserve_during_a_deferral_past_the_horizon_is_empty(store: OutboxStore) -> None:
    """A deferral beyond the lease horizon yields no slot and leaves the bucket untouched."""
    await store.defer("shop-a", T0 + 60, now=T0)
    assert [] == await store.reserve("shop-a", 1.0, 1, 300, T0, horizon=T0 + 30)
    assert [T0 + 60, T0 + 61] == await store.reserve("shop-a", 1.0, 1, 2, T0)
