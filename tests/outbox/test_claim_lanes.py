"""Outbox contract: ``claim_lanes`` takes many lanes with their first batches in one transaction,
by the same rules as one lane at a time (lease, claim order, one row per target, the bucket)."""

from __future__ import annotations

import asyncio

from bridge.outbox import OutboxStore, Status
from bridge.outbox.rows import LaneClaim
from tests.outbox.conftest import OpenStore
from tests.outbox.helpers import T0, add, write

LEASE = 30.0
RATE = 5.0


def want(shop: str, limit: int, horizon: float | None = None) -> LaneClaim:
    return LaneClaim(shop, limit, RATE, 1, horizon)


async def test_each_shop_gets_its_own_batch_in_claim_order_with_slots_from_its_bucket(
    store: OutboxStore,
) -> None:
    """Different batch sizes in one call; priority before age; each shop's slots start at now
    and its bucket moves on (the next reservation comes after the batch)."""
    await add(
        store,
        *(write(f"v:{n}", f"a{n}", shop="shop-a") for n in range(3)),
        write("v:1", "b1", shop="shop-b"),
        write("v:1", "c1", shop="shop-c"),
        write("v:2", "c2", shop="shop-c", priority=5),
    )
    wanted = [want("shop-a", 2), want("shop-b", 5), want("shop-c", 1)]
    taken = await store.claim_lanes("relay-1", LEASE, T0, wanted)
    keys = {shop: [r.idempotency_key for r in lane.rows] for shop, lane in taken.items()}
    assert {"shop-a": ["a0", "a1"], "shop-b": ["b1"], "shop-c": ["c2"]} == keys
    assert [T0, T0 + 1 / RATE] == taken["shop-a"].slots
    assert [T0] == taken["shop-b"].slots == taken["shop-c"].slots
    assert all(r.status == Status.IN_FLIGHT for lane in taken.values() for r in lane.rows)
    assert [T0 + 2 / RATE] == await store.reserve("shop-a", RATE, 1, 1, T0)


async def test_a_lane_held_by_another_relay_is_left_out_and_its_rows_untouched(
    store: OutboxStore,
) -> None:
    """The other relay's lane and rows stay its own; it claims them afterwards."""
    await add(store, write("v:1", "a1", shop="shop-a"), write("v:1", "b1", shop="shop-b"))
    assert await store.acquire_lane("shop-b", "relay-2", LEASE, T0)
    taken = await store.claim_lanes("relay-1", LEASE, T0, [want("shop-a", 5), want("shop-b", 5)])
    assert ["shop-a"] == list(taken)
    theirs = await store.claim_lanes("relay-2", LEASE, T0 + 1, [want("shop-b", 5)])
    assert ["b1"] == [r.idempotency_key for r in theirs["shop-b"].rows]


async def test_a_shop_with_nothing_due_is_kept_empty_or_given_back(store: OutboxStore) -> None:
    """Without ``release_empty`` the lane is held with no rows; with it, it is free at once."""
    kept = await store.claim_lanes("relay-1", LEASE, T0, [want("idle-1", 5)])
    assert ([], []) == (kept["idle-1"].rows, kept["idle-1"].slots)
    assert not await store.acquire_lane("idle-1", "relay-2", LEASE, T0 + 1)
    given = await store.claim_lanes("relay-1", LEASE, T0, [want("idle-2", 5)], release_empty=True)
    assert {} == given
    assert await store.acquire_lane("idle-2", "relay-2", LEASE, T0 + 1)


async def test_one_row_per_target_and_no_slot_past_the_horizon(store: OutboxStore) -> None:
    """A target's newer row waits for the older one; slots stop at the horizon."""
    await add(
        store,
        write("v:1", "k1", supersedes=False),
        write("v:1", "k2", supersedes=False),
        write("v:2", "k3"),
        write("v:3", "k4"),
    )
    taken = await store.claim_lanes("relay-1", LEASE, T0, [want("shop-a", 10, T0 + 0.3)])
    assert ["k1", "k3", "k4"] == [r.idempotency_key for r in taken["shop-a"].rows]
    assert [T0, T0 + 0.2] == taken["shop-a"].slots


async def test_two_relays_claiming_the_same_shops_in_opposite_orders_share_them_once(
    store: OutboxStore, open_other: OpenStore
) -> None:
    """Every shop goes to exactly one relay with all its rows, and neither waits on the other
    for ever (PostgreSQL locks the lane rows in one order whatever order they were asked in)."""
    shops = [f"shop-{n:03}" for n in range(120)]
    await add(store, *(write("v:1", f"k-{s}", shop=s) for s in shops))
    other = await open_other()
    forward = [want(s, 5) for s in shops]
    one, two = await asyncio.wait_for(
        asyncio.gather(
            store.claim_lanes("relay-1", LEASE, T0, forward),
            other.claim_lanes("relay-2", LEASE, T0, forward[::-1]),
        ),
        timeout=30,
    )
    assert set(shops) == set(one) | set(two)
    assert not set(one) & set(two)
    rows = [r.idempotency_key for lane in [*one.values(), *two.values()] for r in lane.rows]
    assert sorted(f"k-{s}" for s in shops) == sorted(rows)


async def test_release_lanes_gives_up_ours_with_each_handover_time(store: OutboxStore) -> None:
    """Our lanes are free at once; the next holder sends no earlier than its lane's handover
    (capped an hour past now); a lane another relay took meanwhile stays theirs."""
    for shop in ("shop-a", "shop-b"):
        assert await store.acquire_lane(shop, "relay-1", LEASE, T0)
    assert await store.acquire_lane("shop-c", "relay-2", LEASE, T0)
    lanes = {"shop-a": T0 + 0.5, "shop-b": None, "shop-c": None}
    assert {"shop-a", "shop-b"} == await store.release_lanes("relay-1", lanes, T0)
    assert await store.acquire_lane("shop-a", "relay-3", LEASE, T0 + 0.1)
    assert await store.acquire_lane("shop-b", "relay-3", LEASE, T0 + 0.1)
    assert not await store.acquire_lane("shop-c", "relay-3", LEASE, T0 + 0.1)
    assert [T0 + 0.5] == await store.reserve("shop-a", RATE, 1, 1, T0 + 0.1)
    assert [T0 + 0.1] == await store.reserve("shop-b", RATE, 1, 1, T0 + 0.1)
    assert await store.acquire_lane("shop-d", "relay-1", LEASE, T0)
    assert {"shop-d"} == await store.release_lanes("relay-1", {"shop-d": T0 + 86_400}, T0)
    assert [T0 + 3600] == await store.reserve("shop-d", RATE, 1, 1, T0)
