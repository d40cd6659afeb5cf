"""Faults around real processes: Kafka stopped for 10 s, the outbox database refusing connections,
a platform failing 30 % and throttling 20 %, and two ingress replicas behind one address."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from bridge.devtools.kafka.local import LocalKafka
from bridge.devtools.sign import sign_request
from bridge.kafka.topics import Topics, ensure_topics
from bridge.serve import free_port
from tests.reliability.conftest import Stack
from tests.reliability.test_crash import webhook_row
from tests.reliability.traffic import (
    RESULTS,
    Row,
    WebhookStream,
    applied_at_simulator,
    applied_row,
    kafka_event_ids,
    order_body,
    outbox_done,
    publish_commands,
    until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]
OUTAGE = 10.0  # seconds the broker stays down


@pytest.fixture
def own_broker(tmp_path: Path) -> LocalKafka:
    """A broker of this test only (it is stopped and started again), on a fixed port."""
    return LocalKafka(tmp_path / "kafka", port=free_port())


async def test_kafka_down_for_ten_seconds_answers_503_and_recovers(
    stack: Stack, own_broker: LocalKafka
) -> None:
    """Broker stopped 10 s under a steady stream: the ingress answers 503 + Retry-After (never a
    500, never a hang), recovers by itself when the broker is back, and every 2xx is on Kafka."""
    bootstrap = await asyncio.to_thread(own_broker.start)
    try:
        stack.write(bootstrap=bootstrap)
        config = stack.config()
        await ensure_topics(config.kafka)
        ingress, url = stack.ingress()
        ingress.start()
        await ingress.wait_for("kafka_producer_ready")
        stream = WebhookStream(url, config.shops["cb-taipei"], count=800, rate=40)
        running = asyncio.create_task(stream.run())
        await stream.until_acknowledged(120)
        await asyncio.to_thread(own_broker.stop)
        await asyncio.sleep(OUTAGE)  # the outage itself
        await asyncio.to_thread(own_broker.start)
        await running
        ids = await kafka_event_ids(bootstrap, Topics.from_config(config.kafka).orders)
    finally:
        await asyncio.to_thread(own_broker.stop)
    row = webhook_row("Kafka stopped 10 s", stream, ids, f"{stream.statuses[503]} answers 503")
    RESULTS.append(row)
    assert set(stream.statuses) <= {200, 202, 503}, stream.statuses
    assert stream.statuses[503] > 0  # the outage was seen, and answered as the contract says
    assert (800, 0, 0) == (row.acknowledged, row.lost, row.unintended)
    assert ingress.proc is not None
    assert ingress.proc.poll() is None  # recovered by itself, not restarted


def _database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def outage_db(postgres_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A database of this test only: (its dsn, the server's admin dsn)."""
    name = f"rel_{int(time.time() * 1000) % 10**9}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _database(postgres_dsn, name), postgres_dsn
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _set_connections(admin_dsn: str, name: str, allowed: bool) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await admin.close()


async def _pg_keys(dsn: str) -> list[str]:
    db = await asyncpg.connect(dsn)
    try:
        return [r[0] for r in await db.fetch("SELECT idempotency_key FROM outbox")]
    finally:
        await db.close()


@pytest.mark.postgres
async def test_outbox_database_unavailable_stops_offsets_and_resumes_without_loss(
    stack: Stack, kafka_topics: Topics, outage_db: tuple[str, str]
) -> None:
    """PostgreSQL refusing every connection for a while: the commands consumer commits no offset
    (its batches fail and are retried), and once the database is back every command is in the
    outbox exactly once."""
    dsn, admin = outage_db
    name = urlsplit(dsn).path.lstrip("/")
    stack.write(dsn=dsn)
    consumer = stack.consumer()
    consumer.start()
    await consumer.wait_for("consumer_started")
    first = await publish_commands(stack.bootstrap, kafka_topics.commands, ["cb-taipei"], 100, "p")
    await until("first rows", lambda: _count_at_least(dsn, 100))
    await _set_connections(admin, name, allowed=False)
    more = await publish_commands(stack.bootstrap, kafka_topics.commands, ["cb-taipei"], 100, "q")
    await consumer.wait_for("batch_failed", timeout=60)
    await _set_connections(admin, name, allowed=True)
    await until("all rows", lambda: _count_at_least(dsn, 200), timeout=90)
    keys = await _pg_keys(dsn)
    row = Row(
        scenario="outbox database unavailable",
        sent=200,
        acknowledged=200,
        in_kafka=200,
        delivered=len(keys),
        duplicates=len(keys) - len(set(keys)),
        unintended=len(keys) - len(set(keys)),
        lost=len(set(first + more) - set(keys)),
        note=f"{consumer.count('batch_failed')} failed batches retried",
    )
    RESULTS.append(row)
    assert (200, 0, 0) == (row.delivered, row.duplicates, row.lost)
    assert consumer.proc is not None
    assert consumer.proc.poll() is None


async def _count_at_least(dsn: str, n: int) -> bool:
    return len(await _pg_keys(dsn)) >= n


async def test_platform_failing_and_throttling_applies_every_write_once(
    stack: Stack, kafka_topics: Topics
) -> None:
    """The simulator fails 30 % of writes (half of them after applying) and answers 429 to 20 %:
    the relay retries until every write is applied, each exactly once."""
    sim = stack.simulator(
        "--fail-rate", "0.15", "--fail-after-rate", "0.15", "--429-rate", "0.2", "--seed", "11"
    )
    sim.start()
    await until("the simulator", lambda: "simulator listening on" in sim.tail())
    consumer, relay = stack.consumer(), stack.relay()
    consumer.start()
    relay.start()
    await consumer.wait_for("consumer_started")
    shops = ["cb-taipei", "bento-bkk"]
    keys = await publish_commands(stack.bootstrap, kafka_topics.commands, shops, 40, "f")
    await until("all delivered", lambda: outbox_done(stack.outbox_path) >= 40, timeout=150)
    applied = await applied_at_simulator(stack.sim_url)
    row = applied_row("platform 30 % failures + 20 % 429", keys, applied)
    RESULTS.append(row)
    assert (40, 0, 0) == (row.delivered, row.duplicates, row.lost)


async def test_two_ingress_replicas_publish_a_cross_replica_redelivery_again(
    stack: Stack, kafka_topics: Topics
) -> None:
    """Documented outcome: a redelivery that lands on the *other* replica is published again with
    the same ce_id (its dedup memory is per process); on the same replica it is a 200 duplicate.
    At-least-once into Kafka, one ce_id per delivery: consumers dedup on it."""
    a, url_a = stack.ingress("ingress-a")
    b, url_b = stack.ingress("ingress-b")
    a.start()
    b.start()
    await a.wait_for("kafka_producer_ready")
    await b.wait_for("kafka_producer_ready")
    shop = stack.config().shops["cb-taipei"]
    answers: dict[str, list[tuple[int, str]]] = {"a": [], "b": [], "a-again": []}
    async with httpx.AsyncClient(timeout=10) as client:
        for n in range(20):
            now = time.time()
            body = order_body(50_000 + n, now)
            suffix, headers = sign_request(shop, body, "orders/create", now)
            for name, url in (("a", url_a), ("b", url_b), ("a-again", url_a)):
                answer = await client.post(
                    f"{url}/webhooks/{shop.id}{suffix}", content=body, headers=headers
                )
                answers[name].append((answer.status_code, answer.json()["id"]))
    ids = await kafka_event_ids(stack.bootstrap, kafka_topics.orders)
    row = Row(
        scenario="two ingress replicas, redelivery on the other",
        sent=20,
        acknowledged=60,
        in_kafka=len({i for i, _ in ids}),
        delivered=None,
        duplicates=len(ids) - len({i for i, _ in ids}),
        unintended=0 if len({k for _, k in ids}) == len({i for i, _ in ids}) else 1,
        lost=len({i for _, i in answers["a"]} - {i for i, _ in ids}),
        note="same ce_id on both replicas",
    )
    RESULTS.append(row)
    assert [202] * 20 == [s for s, _ in answers["a"]] == [s for s, _ in answers["b"]]
    assert [200] * 20 == [s for s, _ in answers["a-again"]]
    assert [i for _, i in answers["a"]] == [i for _, i in answers["b"]]
    assert (20, 20, 0) == (row.in_kafka, row.duplicates, row.lost)
