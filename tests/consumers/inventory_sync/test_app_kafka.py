"""The inventory-sync app under the shared consumer runtime, on the real broker and a real outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from bridge.config import Config
from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from bridge.outbox.store import OutboxStore, open_store
from consumers.inventory_sync import transaction
from consumers.inventory_sync.app import InventorySyncApp
from consumers.inventory_sync.state import GroupState
from consumers.runtime import Runtime, RuntimeOptions
from tests.consumers.inventory_sync.support import Feed, make_config
from tests.consumers.support import committed, until

pytestmark = pytest.mark.kafka
FAST = RuntimeOptions(retry_delay=0.05)


@pytest.fixture
def config(kafka_topics: Topics, kafka_bootstrap: str, tmp_path: Path) -> Config:
    return make_config(f"sqlite:///{tmp_path / 'outbox.db'}", kafka_topics.prefix, kafka_bootstrap)


@pytest.fixture
async def store(config: Config) -> AsyncIterator[OutboxStore]:
    opened = await open_store(config.outbox.dsn)
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


async def publish(bootstrap: str, records: Sequence[Record]) -> None:
    """Produce the feed's records (same topic, key and value), all to partition 0 in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            headers = [("ce_type", (r.ce.type or "").encode())]
            await producer.send_and_wait(
                r.topic, r.raw, key=(r.key or "").encode(), partition=0, headers=headers
            )
    finally:
        await producer.stop()


async def consumed(config: Config, group: str, counts: dict[str, int]) -> None:
    """Run the app as ``group`` until it committed ``counts[topic]`` records of each topic."""
    app = InventorySyncApp(group_id=group)
    stop = asyncio.Event()
    task = asyncio.create_task(Runtime(app, config, options=FAST).run(stop))

    async def done() -> bool:
        if task.done():
            task.result()
            raise AssertionError("the runtime stopped by itself")
        for topic, count in counts.items():
            if count and committed_offsets.get(topic, {}).get(0, -1) < count:
                committed_offsets[topic] = await committed(
                    config.kafka.bootstrap_servers, group, topic
                )
                if committed_offsets[topic].get(0, -1) < count:
                    return False
        return True

    committed_offsets: dict[str, dict[int, int]] = {}
    try:
        await until(done)
    finally:
        stop.set()
        await task


async def pool_and_rows(store: OutboxStore) -> tuple[GroupState | None, list[tuple[str, str, int]]]:
    async with store.transaction() as tx:
        raw = await tx.get_state(transaction.GROUPS, "tee")
    rows = sorted(await store.list_rows(limit=1000), key=lambda r: r.id)
    state = None if raw is None else GroupState.from_json(raw)
    return state, [(r.shop, r.target, int(r.payload["quantity"])) for r in rows]


async def contact(config: Config, feed: Feed, group: str, store: OutboxStore) -> None:
    """First contact from cb-taipei (10), then bento-bkk's echo of the 8 it was sent (the claim
    stands for the relay sending it: only a sent write can be echoed)."""
    await publish(config.kafka.bootstrap_servers, [feed.level("cb-taipei", "5001", 10)])
    await consumed(config, group, {feed.topics.variants: 1})
    assert await store.claim("bento-bkk", "relay-test", 10, 30.0, time.time())
    await publish(
        config.kafka.bootstrap_servers, [feed.level("bento-bkk", "753758", 8, previous=0)]
    )
    await consumed(config, group, {feed.topics.variants: 2})


def feed_of(config: Config) -> Feed:
    return Feed(Topics(config.kafka.topic_prefix))


async def test_a_variant_event_on_one_member_queues_writes_for_the_others(
    config: Config, store: OutboxStore, topic_prefix: str
) -> None:
    """cb-taipei reports 10: bento-bkk (buffer 2) gets 8 and std-orders 10 as set_stock rows."""
    feed = feed_of(config)
    await publish(config.kafka.bootstrap_servers, [feed.level("cb-taipei", "5001", 10)])
    await consumed(config, f"{topic_prefix}-inv", {feed.topics.variants: 1})
    state, rows = await pool_and_rows(store)
    assert (10, [("bento-bkk", "variant:753758", 8), ("std-orders", "variant:o-1", 10)]) == (
        None if state is None else state.pool,
        sorted(rows),
    )


async def test_a_restart_from_an_older_offset_changes_nothing(
    config: Config, store: OutboxStore, topic_prefix: str
) -> None:
    """Records consumed again from the start (a new group: offset 0) add no row, move no pool."""
    feed, group = feed_of(config), f"{topic_prefix}-inv"
    await contact(config, feed, group, store)
    await publish(config.kafka.bootstrap_servers, [feed.level("cb-taipei", "5001", 7)])
    await consumed(config, group, {feed.topics.variants: 3})
    before = await pool_and_rows(store)
    await consumed(config, f"{topic_prefix}-inv-again", {feed.topics.variants: 3})
    assert before == await pool_and_rows(store)
    assert 7 == (before[0].pool if before[0] else None)


async def test_two_members_sales_and_an_order_in_one_run_all_count(
    config: Config, store: OutboxStore, topic_prefix: str
) -> None:
    """Sales on cb-taipei and bento-bkk and an order (created, then paid) on std-orders: each once."""
    feed, group = feed_of(config), f"{topic_prefix}-inv"
    await contact(config, feed, group, store)
    records = [
        feed.level("cb-taipei", "5001", 7),
        feed.level("bento-bkk", "753758", 6, previous=8),
    ]
    orders = [
        feed.order("std-orders", "A1", "created", [("o-1", 1)]),
        feed.order("std-orders", "A1", "paid", [("o-1", 1)]),
    ]
    await publish(config.kafka.bootstrap_servers, records + orders)
    await consumed(config, group, {feed.topics.variants: 4, feed.topics.orders: 2})
    state, rows = await pool_and_rows(store)
    assert 10 - 3 - 2 - 1 == (state.pool if state else None)
    newest = {(shop, target): qty for shop, target, qty in rows}
    assert {
        ("cb-taipei", "variant:5001"): 4,
        ("bento-bkk", "variant:753758"): 2,
        ("std-orders", "variant:o-1"): 4,
    } == newest
