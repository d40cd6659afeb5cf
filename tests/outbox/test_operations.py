"""Outbox contract, part 3: operator operations, transactions, consumer state, migrations."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bridge.outbox import OutboxStore, Status
from tests.outbox.conftest import OpenStore
from tests.outbox.helpers import T0, add, write

LEASE = 30.0
DAY = 86400.0


async def make_dead(
    store: OutboxStore, *keys_targets: tuple[str, str], shop: str = "shop-a", now: float = T0
) -> list[int]:
    """Add rows, claim them and mark them dead; return their ids."""
    results = await add(store, *(write(t, k, shop=shop) for k, t in keys_targets), now=now)
    for row in await store.claim(shop, "relay", 100, LEASE, now):
        await store.mark_dead(row.id, "relay", "HTTP 404", now)
    return [r.id for r in results]


async def test_retry_puts_a_dead_row_back_to_pending(store: OutboxStore) -> None:
    """retry: dead -> pending, attempts reset, due at now; the last error is kept."""
    (dead,) = await make_dead(store, ("k1", "variant:1"))
    assert True is await store.retry(dead, T0 + 100)
    row = await store.get(dead)
    assert row is not None
    assert (Status.PENDING, 0, T0 + 100, "HTTP 404") == (
        row.status, row.attempts, row.next_attempt_at, row.last_error
    )  # fmt: skip


async def test_retry_refuses_rows_that_are_not_dead(store: OutboxStore) -> None:
    """Only dead rows can be retried; unknown ids are refused too."""
    (pending,) = await add(store, write("variant:1", "k1"))
    assert False is await store.retry(pending.id, T0)
    assert False is await store.retry(999_999, T0)


async def test_retry_refuses_a_set_stock_a_newer_one_replaced(store: OutboxStore) -> None:
    """Re-sending an old stock value after a newer one would move stock backwards."""
    (old,) = await make_dead(store, ("k1", "variant:1"))
    await add(store, write("variant:1", "k2"), now=T0 + 1)
    assert False is await store.retry(old, T0 + 2)
    assert 0 == await store.retry_all_dead(T0 + 2)


async def test_retry_all_dead_by_shop(store: OutboxStore) -> None:
    """retry_all_dead revives every dead row, or those of one shop, and counts them."""
    await make_dead(store, ("a1", "variant:1"), ("a2", "variant:2"), shop="shop-a")
    await make_dead(store, ("b1", "variant:1"), shop="shop-b")
    assert 2 == await store.retry_all_dead(T0 + 1, shop="shop-a")
    assert 1 == await store.retry_all_dead(T0 + 1)
    assert {("shop-a", "pending"): 2, ("shop-b", "pending"): 1} == await store.counts()


async def test_retry_all_dead_revives_only_the_newest_of_a_target(store: OutboxStore) -> None:
    """Of several dead set_stock rows for one target, only the newest value is sent again."""
    (old,) = await make_dead(store, ("k1", "variant:1"))
    (new,) = await make_dead(store, ("k2", "variant:1"), now=T0 + 1)
    assert 1 == await store.retry_all_dead(T0 + 2)
    rows = {r.id: r.status for r in await store.list_rows()}
    assert {old: Status.DEAD, new: Status.PENDING} == rows


async def test_purge_deletes_only_old_finished_rows(store: OutboxStore) -> None:
    """purge removes done/dead/superseded rows older than the window, never live ones."""
    done, superseded, newer, pending = await add(
        store,
        write("variant:1", "k1"),
        write("variant:2", "k2"),
        write("variant:2", "k3"),
        write("variant:4", "k4", kind="note"),
    )
    (dead,) = await make_dead(store, ("k5", "variant:5"), shop="shop-b")
    for row in await store.claim("shop-a", "relay", 1, LEASE, T0):
        await store.mark_done(row.id, "relay", T0)
    (recent,) = await make_dead(store, ("k6", "variant:6"), shop="shop-b", now=T0 + 6 * DAY)
    assert 3 == await store.purge(timedelta(days=7), T0 + 7 * DAY + 1)
    remaining = {r.id for r in await store.list_rows()}
    assert {newer.id, pending.id, recent} == remaining
    assert {done.id, superseded.id, dead}.isdisjoint(remaining)


async def test_counts_by_shop_and_status(store: OutboxStore) -> None:
    """counts() reports rows per (shop, status) for metrics."""
    await add(store, write("variant:1", "k1"), write("variant:1", "k2"))
    await add(store, write("variant:1", "k3", shop="shop-b"))
    await store.claim("shop-b", "relay", 10, LEASE, T0)
    expected = {("shop-a", "superseded"): 1, ("shop-a", "pending"): 1, ("shop-b", "in_flight"): 1}
    assert expected == await store.counts()


async def test_depth_counts_live_and_dead_rows_only(store: OutboxStore) -> None:
    """depth() is counts() without the done and superseded rows (the relay's gauge)."""
    await add(store, write("variant:1", "k1"), write("variant:1", "k2"), write("variant:2", "k3"))
    first, _second = await store.claim("shop-a", "relay", 10, LEASE, T0)
    await store.mark_done(first.id, "relay", T0)
    await make_dead(store, ("k5", "variant:5"), shop="shop-b")
    await add(store, write("variant:1", "k4", shop="shop-b"))
    expected = {("shop-a", "in_flight"): 1, ("shop-b", "dead"): 1, ("shop-b", "pending"): 1}
    assert expected == await store.depth()
    assert 1 == (await store.counts())[("shop-a", "superseded")]


async def test_list_rows_filters_newest_first(store: OutboxStore) -> None:
    """list_rows filters by status and shop, newest first, at most `limit` rows."""
    results = await add(store, *(write(f"variant:{i}", f"k{i}") for i in range(4)))
    await add(store, write("variant:1", "other", shop="shop-b"))
    ids = [r.id for r in results]
    listed = await store.list_rows(shop="shop-a", status=Status.PENDING, limit=3)
    assert ids[::-1][:3] == [r.id for r in listed]
    assert [] == await store.list_rows(status=Status.DEAD)


async def test_state_round_trip_and_overwrite(store: OutboxStore) -> None:
    """put_state/get_state store JSON values per (namespace, key); missing keys are None."""
    value = {"pool": 12, "members": {"shop-a:5001": 3}, "ids": ["1", "2"], "ratio": 0.5}
    async with store.transaction() as tx:
        await tx.put_state("pools", "tee-black-m", value)
        await tx.put_state("pools", "other", 1)
    async with store.transaction() as tx:
        assert value == await tx.get_state("pools", "tee-black-m")
        await tx.put_state("pools", "other", 2)
    async with store.transaction() as tx:
        assert (2, None, None) == (
            await tx.get_state("pools", "other"),
            await tx.get_state("pools", "missing"),
            await tx.get_state("stock", "tee-black-m"),
        )


async def test_state_read_modify_write_is_serialised(
    store: OutboxStore, open_other: OpenStore
) -> None:
    """Concurrent increments from two processes, starting from no value, lose no update."""
    other = await open_other()

    async def increment(target: OutboxStore) -> None:
        async with target.transaction() as tx:
            current = await tx.get_state("pools", "g")
            await tx.put_state("pools", "g", (current or 0) + 1)

    await asyncio.gather(*(increment(s) for s in [store, other] * 10))
    async with store.transaction() as tx:
        assert 20 == await tx.get_state("pools", "g")


async def test_rollback_leaves_no_rows_and_no_state(store: OutboxStore) -> None:
    """An exception inside a transaction discards its outbox rows and state changes together."""
    async with store.transaction() as tx:
        await tx.put_state("pools", "g", 10)

    async def fail_midway() -> None:
        async with store.transaction() as tx:
            await tx.add(write("variant:1", "k1"), T0)
            await tx.put_state("pools", "g", 9)
            await tx.put_state("pools", "h", 1)
            raise RuntimeError("consumer crashed")

    with pytest.raises(RuntimeError, match="consumer crashed"):
        await fail_midway()
    assert [] == await store.list_rows()
    async with store.transaction() as tx:
        assert (10, None) == (await tx.get_state("pools", "g"), await tx.get_state("pools", "h"))
    (again,) = await add(store, write("variant:1", "k1"))
    assert False is again.duplicate


async def test_migrate_is_idempotent(store: OutboxStore, open_other: OpenStore) -> None:
    """migrate() again, from this or another process, keeps the schema and the data."""
    (kept,) = await add(store, write("variant:1", "k1"))
    other = await open_other()
    await other.migrate()
    await store.migrate()
    assert [kept.id] == [r.id for r in await other.list_rows()]


async def test_retry_ends_the_shops_deferral(store: OutboxStore) -> None:
    """An operator's retry lets the shop send at once, however long its Retry-After was."""
    (dead,) = await make_dead(store, ("k1", "variant:1"))
    await store.defer("shop-a", T0 + 3000, now=T0)
    await store.defer("shop-b", T0 + 3000, now=T0)
    assert True is await store.retry(dead, T0 + 10)
    assert [T0 + 10] == await store.reserve("shop-a", 1.0, 1, 1, T0 + 10)
    assert [T0 + 3000] == await store.reserve("shop-b", 1.0, 1, 1, T0 + 10)


async def test_retry_all_dead_ends_the_deferral_of_every_revived_shop(store: OutboxStore) -> None:
    """retry_all_dead ends the deferrals of the shops whose rows it put back to pending."""
    await make_dead(store, ("a1", "variant:1"), shop="shop-a")
    await make_dead(store, ("b1", "variant:1"), shop="shop-b")
    for shop in ("shop-a", "shop-b", "shop-c"):
        await store.defer(shop, T0 + 3000, now=T0)
    assert 2 == await store.retry_all_dead(T0 + 10)
    slots = [
        (await store.reserve(s, 1.0, 1, 1, T0 + 10))[0] for s in ("shop-a", "shop-b", "shop-c")
    ]
    assert [T0 + 10, T0 + 10, T0 + 3000] == slots


async def test_a_refused_retry_keeps_the_deferral(store: OutboxStore) -> None:
    """A retry that changes nothing (the row is not dead) does not end the shop's deferral."""
    (pending,) = await add(store, write("variant:1", "k1"))
    await store.defer("shop-a", T0 + 3000, now=T0)
    assert False is await store.retry(pending.id, T0 + 10)
    assert [T0 + 3000] == await store.reserve("shop-a", 1.0, 1, 1, T0 + 10)
