"""The inventory-sync app over a real outbox (SQLite and PostgreSQL): batches in, set_stock rows out."""

from __future__ import annotations

import orjson
import pytest
from jsonschema import Draft202012Validator

from bridge.outbox.store import OutboxStore, Status
from consumers.inventory_sync import transaction
from tests.consumers.inventory_sync.support import BENTO, CB, ORDERS, T0, Feed, Harness
from tests.platforms.support import validator


async def started(store: OutboxStore) -> tuple[Harness, Feed]:
    return await Harness(store).start(), Feed()


async def first_contact(h: Harness, feed: Feed, level: int = 10) -> None:
    """cb-taipei reports ``level``; bento-bkk echoes the write it got."""
    await h.handle([feed.level("cb-taipei", "5001", level)])
    await h.handle([feed.level("bento-bkk", "753758", level - 2, previous=0)])


async def test_first_level_becomes_the_pool_and_is_written_to_the_other_members(
    store: OutboxStore,
) -> None:
    """First contact: the level seen is the pool; every other member gets max(0, pool - buffer)."""
    h, feed = await started(store)
    await h.handle([feed.level("cb-taipei", "5001", 10)])
    rows = await h.rows()
    assert {("bento-bkk", "variant:753758"): 8, ("std-orders", "variant:o-1"): 10} == {
        (r.shop, r.target): r.payload["quantity"] for r in rows
    }
    bento = next(r for r in rows if r.shop == "bento-bkk")
    assert ("set_stock", True, 0) == (bento.kind, bento.superseding, bento.priority)
    assert {"command_id": bento.idempotency_key, "quantity": 8, "variant": "753758"} == dict(
        bento.payload
    )
    assert 10 == (await h.state("tee")).pool


async def test_variant_event_on_one_member_writes_the_others(store: OutboxStore) -> None:
    """A sale seen on cb-taipei moves the pool and queues the new level for the other members."""
    h, feed = await started(store)
    await first_contact(h, feed)
    await h.handle([feed.level("cb-taipei", "5001", 7)])
    assert {
        ("bento-bkk", "variant:753758"): 5,
        ("std-orders", "variant:o-1"): 7,
    } == await h.levels()
    assert 7 == (await h.state("tee")).pool


async def test_a_cyberbiz_variant_write_carries_its_product(store: OutboxStore) -> None:
    """The set_stock payload of a Cyberbiz variant member names its product (the API needs it)."""
    h, feed = await started(store)
    await h.handle([feed.level("bento-bkk", "753758", 5)])
    cb = next(r for r in await h.rows() if r.shop == "cb-taipei")
    assert {
        "command_id": cb.idempotency_key,
        "quantity": 5,
        "product": "1001",
        "variant": "5001",
    } == dict(cb.payload)


async def test_redelivered_batch_changes_nothing(store: OutboxStore) -> None:
    """A consumer restart from an older offset re-reads applied records: no row, no pool change."""
    h, feed = await started(store)
    first = [feed.level("cb-taipei", "5001", 10)]
    await h.handle(first)
    await h.handle([feed.level("cb-taipei", "5001", 6)])
    rows, state = await h.rows(None), await h.state("tee")
    h.now = T0 + 30
    await h.handle(first)  # 10 again: an external change of +4 if it were applied twice
    assert ([r.id for r in rows], state.to_json()) == (
        [r.id for r in await h.rows(None)],
        (await h.state("tee")).to_json(),
    )


async def test_redelivery_with_new_records_applies_only_the_new_ones(store: OutboxStore) -> None:
    """Records at or below the stored offset are skipped, the ones after it applied."""
    h, feed = await started(store)
    old = [feed.level("cb-taipei", "5001", 10), feed.level("cb-taipei", "5001", 9)]
    await h.handle(old)
    await h.handle([*old, feed.level("cb-taipei", "5001", 4)])
    assert 4 == (await h.state("tee")).pool
    async with store.transaction() as tx:
        assert 2 == await tx.get_state(transaction.OFFSETS, "commerce.variants:0")


@pytest.mark.parametrize("relay_done", [False, True])
async def test_a_sale_equal_to_a_write_not_yet_sent_counts(
    store: OutboxStore, relay_done: bool
) -> None:
    """Two shops sell at once, in two batches: bento-bkk's new level (7) equals the write queued
    for it after cb-taipei's sale. Not sent yet (the outbox says so), it cannot be our echo, so
    both sales count; had the relay sent it already, the same level would settle it as an echo."""
    h, feed = await started(store)
    await first_contact(h, feed)
    await h.handle([feed.level("cb-taipei", "5001", 9)])  # queues 7 for bento-bkk (buffer 2)
    await h.handle([feed.level("bento-bkk", "753758", 7, previous=8)], relay_done=relay_done)
    assert (9 if relay_done else 8) == (await h.state("tee")).pool


async def test_two_members_sales_in_one_batch_both_count(store: OutboxStore) -> None:
    """Sales on two shops in one batch are deltas: both come off the pool."""
    h, feed = await started(store)
    await first_contact(h, feed)
    await h.handle(
        [feed.level("cb-taipei", "5001", 7), feed.level("bento-bkk", "753758", 6, previous=8)]
    )
    assert 5 == (await h.state("tee")).pool
    assert {
        ("cb-taipei", "variant:5001"): 5,
        ("bento-bkk", "variant:753758"): 3,
        ("std-orders", "variant:o-1"): 5,
    } == await h.levels()


async def test_one_batch_plans_one_write_per_member(store: OutboxStore) -> None:
    """Coalescing: a burst of changes in one batch costs one write per member, not per change."""
    h, feed = await started(store)
    await first_contact(h, feed)
    before = len(await h.rows(None))
    await h.handle([feed.level("cb-taipei", "5001", q) for q in (9, 8, 7, 6, 5)])
    new = (await h.rows(None))[before:]
    assert [("bento-bkk", 3), ("std-orders", 5)] == sorted(
        (r.shop, r.payload["quantity"]) for r in new
    )


async def test_an_echo_of_our_write_moves_nothing(store: OutboxStore) -> None:
    """The platform reporting the value we wrote settles the write; the pool stays."""
    h, feed = await started(store)
    await h.handle([feed.level("cb-taipei", "5001", 10)])
    rows = len(await h.rows(None))
    await h.handle([feed.level("bento-bkk", "753758", 8, previous=0)])
    state = await h.state("tee")
    assert (10, (), rows) == (state.pool, state.member(BENTO).pending, len(await h.rows(None)))


async def test_orders_source_debits_once_and_credits_on_cancel(store: OutboxStore) -> None:
    """created and paid of one order debit once (redelivered too); cancelled puts the units back."""
    h, feed = await started(store)
    await first_contact(h, feed)
    await h.handle([feed.order("std-orders", "A1", "created", [("o-1", 2)])])
    await h.handle([feed.order("std-orders", "A1", "paid", [("o-1", 2)])])
    await h.handle([feed.order("std-orders", "A1", "created", [("o-1", 2)])])
    assert 8 == (await h.state("tee")).pool
    await h.handle([feed.order("std-orders", "A1", "cancelled", [("o-1", 2)])])
    assert 10 == (await h.state("tee")).pool


async def test_each_shop_moves_the_pool_only_through_its_stock_source(store: OutboxStore) -> None:
    """Levels of an orders shop, orders of a levels shop and unsynced variants change nothing."""
    h, feed = await started(store)
    await first_contact(h, feed)
    rows = len(await h.rows(None))
    await h.handle(
        [
            feed.level("std-orders", "o-1", 3),
            feed.order("cb-taipei", "B7", "paid", [("5001", 4)]),
            feed.level("cb-taipei", "9999", 1),
            feed.level("cb-taipei", "5001", None),
        ]
    )
    assert (10, rows) == ((await h.state("tee")).pool, len(await h.rows(None)))


async def test_a_batch_without_synced_records_touches_no_state(store: OutboxStore) -> None:
    """Events for variants in no group are ignored before any database read or write."""
    h, feed = await started(store)
    await h.handle([feed.level("cb-taipei", "123", 4), feed.order("bento-bkk", "X", "paid", [])])
    async with store.transaction() as tx:
        assert (None, None) == (
            await tx.get_state(transaction.OFFSETS, "commerce.variants:0"),
            await tx.get_state(transaction.GROUPS, "tee"),
        )


async def test_oversold_keeps_the_pool_negative_alerts_and_sells_out_first(
    store: OutboxStore,
) -> None:
    """A negative pool stays negative; metric, alert record (alert.v1) and priority sell-out rows."""
    h, feed = await started(store)
    await first_contact(h, feed)
    h.now = T0 + 5
    alerts = await h.handle([feed.order("std-orders", "A2", "created", [("o-1", 12)])])
    assert -2 == (await h.state("tee")).pool
    assert 1.0 == h.metric("bridge_inventory_oversold_total", group="tee")
    assert 1 == len(alerts)
    alert = orjson.loads(alerts[0].value)
    assert [] == [e.message for e in validator("alert").iter_errors(alert)]
    assert (
        "commerce.deliveries",
        b"inventory-sync:tee",
        {"kind": "oversold", "group": "tee", "pool": -2, "delta": -12, "member": ORDERS},
    ) == (
        alerts[0].topic,
        alerts[0].key,
        {k: alert[k] for k in ("kind", "group", "pool", "delta", "member")},
    )
    sell_outs = {(r.shop, r.payload["quantity"], r.priority) for r in await h.rows()}
    assert {("cb-taipei", 0, 10), ("bento-bkk", 0, 10)} <= sell_outs


def test_alert_schema_is_a_valid_schema() -> None:
    """schemas/alert.v1.json is itself a valid JSON Schema (2020-12)."""
    Draft202012Validator.check_schema(validator("alert").schema)


async def test_a_cyberbiz_group_member_is_seen_through_any_of_its_variants(
    store: OutboxStore,
) -> None:
    """variants/update of a variant in a Cyberbiz group is the group's level; it is written as group:ID."""
    h, feed = await started(store)
    await h.handle([feed.level("cb-taipei", "6002", 4)])
    assert {("std-shop", "variant:m-1"): 4} == await h.levels()
    await h.handle([feed.level("std-shop", "m-1", 3, previous=4)])
    group = next(r for r in await h.rows() if r.shop == "cb-taipei")
    assert (
        "group:77",
        {"command_id": group.idempotency_key, "cyberbiz_group": "77", "quantity": 3},
    ) == (
        group.target,
        dict(group.payload),
    )


async def test_newer_writes_supersede_pending_ones(store: OutboxStore) -> None:
    """Only the latest level of a member is sent: older pending rows become superseded."""
    h, feed = await started(store)
    await first_contact(h, feed)
    await h.handle([feed.level("cb-taipei", "5001", 9)])
    await h.handle([feed.level("cb-taipei", "5001", 8)])
    bento = [r for r in await h.rows(None) if r.shop == "bento-bkk"]
    assert [(Status.SUPERSEDED, 7), (Status.PENDING, 6)] == [
        (r.status, r.payload["quantity"]) for r in bento[-2:]
    ]
    assert [6] == [p.value for p in (await h.state("tee")).member(BENTO).pending]
    assert CB in (await h.state("tee")).members
