"""Crashes of real processes under a steady stream: kill -9 of the ingress, of the commands
consumer and of the relay (then a restart), and SIGTERM of the ingress under load. At the end
everything acknowledged is in Kafka, in the outbox or applied at the platform, exactly once."""

from __future__ import annotations

import asyncio

import pytest

from bridge.kafka.topics import Topics
from tests.reliability.conftest import Stack
from tests.reliability.traffic import (
    RESULTS,
    Row,
    WebhookStream,
    applied_at_simulator,
    applied_row,
    kafka_event_ids,
    outbox_done,
    outbox_keys,
    publish_commands,
    until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


def webhook_row(
    scenario: str, stream: WebhookStream, records: list[tuple[str, str]], note: str
) -> Row:
    acked = set(stream.ids.values())
    in_kafka = {ce_id for ce_id, _ in records}
    ids_per_key: dict[str, set[str]] = {}
    for ce_id, key in records:
        ids_per_key.setdefault(key, set()).add(ce_id)
    return Row(
        scenario=scenario,
        sent=stream.count,
        acknowledged=len(stream.ids),
        in_kafka=len(acked & in_kafka),
        delivered=None,
        duplicates=len(records) - len(in_kafka),
        unintended=sum(len(ids) - 1 for ids in ids_per_key.values()),
        lost=len(acked - in_kafka),
        note=note,
    )


async def test_kill_9_of_the_ingress_loses_no_acknowledged_webhook(
    stack: Stack, kafka_topics: Topics
) -> None:
    """Every webhook answered 2xx before or after a kill -9 of the ingress is on Kafka; the
    platform's retries of unanswered ones publish at most one extra copy each (same ce_id)."""
    ingress, url = stack.ingress()
    ingress.start()
    await ingress.wait_for("kafka_producer_ready")
    stream = WebhookStream(url, stack.config().shops["cb-taipei"], count=300, rate=100)
    running = asyncio.create_task(stream.run())
    await stream.until_acknowledged(100)
    ingress.kill9()
    ingress.start()
    await ingress.wait_for("kafka_producer_ready")
    await running
    ids = await kafka_event_ids(stack.bootstrap, kafka_topics.orders)
    row = webhook_row("kill -9 ingress", stream, ids, f"{stream.unanswered_retries} retries")
    RESULTS.append(row)
    assert (300, 0, 0, 0) == (row.acknowledged, row.lost, row.unintended, stream.statuses[500])
    assert row.duplicates <= stream.unanswered_retries


async def test_sigterm_of_the_ingress_under_load_drains(stack: Stack, kafka_topics: Topics) -> None:
    """SIGTERM while webhooks stream in: exit 0, every 2xx already given is on Kafka; the rest
    are acknowledged by the next process after the platform retries."""
    ingress, url = stack.ingress()
    ingress.start()
    await ingress.wait_for("kafka_producer_ready")
    stream = WebhookStream(url, stack.config().shops["cb-taipei"], count=300, rate=100)
    running = asyncio.create_task(stream.run())
    await stream.until_acknowledged(100)
    assert 0 == await ingress.terminate()
    ingress.start()
    await ingress.wait_for("kafka_producer_ready")
    await running
    ids = await kafka_event_ids(stack.bootstrap, kafka_topics.orders)
    row = webhook_row("SIGTERM ingress under load", stream, ids, "exit 0")
    RESULTS.append(row)
    assert (300, 0, 0, 0) == (row.acknowledged, row.lost, row.unintended, stream.statuses[500])
    assert row.duplicates <= stream.unanswered_retries


async def test_kill_9_of_the_commands_consumer_loses_and_repeats_nothing(
    stack: Stack, kafka_topics: Topics
) -> None:
    """Commands stream in while the consumer is killed -9 and restarted: every command is in the
    outbox exactly once (offsets are committed only after the outbox transaction)."""
    consumer = stack.consumer()
    consumer.start()
    await consumer.wait_for("consumer_started")
    keys = await publish_commands(stack.bootstrap, kafka_topics.commands, ["cb-taipei"], 200, "a")
    await until("some rows", lambda: sum(outbox_keys(stack.outbox_path).values()) >= 40)
    consumer.kill9()
    more = await publish_commands(stack.bootstrap, kafka_topics.commands, ["cb-taipei"], 200, "b")
    consumer.start()
    await until("all rows", lambda: set(keys + more) <= set(outbox_keys(stack.outbox_path)))
    rows = outbox_keys(stack.outbox_path)
    row = Row(
        scenario="kill -9 commands consumer",
        sent=400,
        acknowledged=400,
        in_kafka=400,
        delivered=sum(rows.values()),
        duplicates=sum(n - 1 for n in rows.values()),
        unintended=sum(n - 1 for n in rows.values()),
        lost=len(set(keys + more) - set(rows)),
        note="outbox rows",
    )
    RESULTS.append(row)
    assert (400, 0, 0) == (row.delivered, row.duplicates, row.lost)


async def test_kill_9_of_the_relay_applies_every_write_once(
    stack: Stack, kafka_topics: Topics
) -> None:
    """A relay killed -9 mid-delivery and restarted: every write is applied at the platform
    exactly once (a row leased by the dead relay is claimed again; its Idempotency-Key makes the
    repeat a replay, not a second write)."""
    sim = stack.simulator()
    sim.start()
    await until("the simulator", lambda: "simulator listening on" in sim.tail())
    consumer, relay = stack.consumer(), stack.relay()
    consumer.start()
    relay.start()
    await consumer.wait_for("consumer_started")
    shops = ["cb-taipei", "bento-bkk"]
    keys = await publish_commands(stack.bootstrap, kafka_topics.commands, shops, 60, "r")
    await until("first deliveries", lambda: outbox_done(stack.outbox_path) >= 15)
    relay.kill9()
    relay.start()
    await until("all delivered", lambda: outbox_done(stack.outbox_path) >= 60, timeout=90)
    applied = await applied_at_simulator(stack.sim_url)
    row = applied_row("kill -9 relay", keys, applied)
    RESULTS.append(row)
    assert (60, 0, 0) == (row.delivered, row.duplicates, row.lost)
