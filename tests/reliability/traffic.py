"""Steady streams into the real processes, and the counts the summary table is made of."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bridge.config import ShopConfig
from bridge.devtools.sign import sign_request
from tests.support import fixture_json

TAIPEI = 8 * 3600
RESULTS: list[Row] = []  # the summary table, printed by conftest at the end of the session


@dataclass(slots=True)
class Row:
    """One scenario's counts: what went in, what came out, and what went missing."""

    scenario: str
    sent: int
    acknowledged: int
    in_kafka: int
    delivered: int | None
    duplicates: int  # extra copies under the same id (at-least-once, removed by id downstream)
    unintended: int  # extra effects, or one delivery under two ids (nothing downstream can fix)
    lost: int
    note: str = ""


def taipei(now: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + TAIPEI))


def order_body(order_id: int, now: float) -> bytes:
    """A distinct Cyberbiz ``orders/create`` body (the sample order with its own id)."""
    order = fixture_json("cyberbiz/order.json")
    order["id"] = order_id
    order["order_number"] = f"R{order_id}"
    order["created_at"] = order["updated_at"] = taipei(now)
    return orjson.dumps(order)


@dataclass
class WebhookStream:
    """Signed deliveries at ``rate`` per second; each is retried like a platform retries (same
    body, same signature) after a 5xx, a timeout or a broken connection, until answered 2xx."""

    base_url: str
    shop: ShopConfig
    count: int
    rate: float
    first_id: int = 1
    request_timeout: float = 10.0
    give_up_after: float = 90.0
    ids: dict[int, str] = field(default_factory=dict)  # order id -> event id of its 2xx
    statuses: Counter[int | str] = field(default_factory=Counter)
    unanswered_retries: int = 0  # retries after an attempt that got no answer at all
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        # No pool limit: a timeout then always means the ingress did not answer, never that the
        # client's own pool was full.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=self.request_timeout, limits=limits) as client:
            tasks = []
            start = time.monotonic()
            for n in range(self.count):
                delay = start + n / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the load, not waiting for a result
                tasks.append(asyncio.create_task(self._deliver(client, self.first_id + n)))
            await asyncio.gather(*tasks)

    async def _deliver(self, client: httpx.AsyncClient, order_id: int) -> None:
        now = time.time()
        body = order_body(order_id, now)
        suffix, headers = sign_request(self.shop, body, "orders/create", now)
        url = f"{self.base_url}/webhooks/{self.shop.id}{suffix}"
        deadline = time.monotonic() + self.give_up_after
        backoff = 0.25
        while time.monotonic() < deadline:
            try:
                answer = await client.post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                self.statuses["timeout"] += 1
                self.unanswered_retries += 1
            except httpx.TransportError:
                self.statuses["connection"] += 1
                self.unanswered_retries += 1
            else:
                self.statuses[answer.status_code] += 1
                if answer.status_code in (200, 202):
                    self.ids[order_id] = answer.json()["id"]
                    self.acked.set()
                    return
            await asyncio.sleep(backoff)  # the platform's retry interval
            backoff = min(2.0, backoff * 2)

    async def until_acknowledged(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ids) < n:
            assert time.monotonic() < deadline, f"only {len(self.ids)} of {n} acknowledged"
            await asyncio.sleep(0.05)


async def kafka_event_ids(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    """``(ce_id, key)`` of every record on ``topic``, read from the start to its end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        ids: list[tuple[str, str]] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    ids.append((headers["ce_id"].decode(), (record.key or b"").decode()))
        return ids
    finally:
        await consumer.stop()


async def publish_commands(
    bootstrap: str, topic: str, shops: list[str], count: int, tag: str
) -> list[str]:
    """``count`` set_stock commands spread over ``shops`` (acks=all); their idempotency keys."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    keys = []
    try:
        for n in range(count):
            shop = shops[n % len(shops)]
            key = f"{tag}-{n}"
            command = {
                "id": f"cmd-{key}",
                "shop": shop,
                "kind": "set_stock",
                "target": {"variant": f"{7000 + n}", "product": "1001"},
                "payload": {"quantity": 10 + n % 7},
                "idempotency_key": key,
            }
            await producer.send(topic, orjson.dumps(command), key=f"{shop}:{7000 + n}".encode())
            keys.append(key)
        await producer.flush()
    finally:
        await producer.stop()
    return keys


def outbox_keys(path: Path) -> Counter[str]:
    """Idempotency keys of the SQLite outbox's rows (read-only, while processes run)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT idempotency_key FROM outbox").fetchall()
    return Counter(str(r[0]) for r in rows)


def outbox_done(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE status = 'done'").fetchone()[0])


async def applied_at_simulator(sim_url: str) -> Counter[str]:
    """How many times the simulator applied a write, per Idempotency-Key."""
    async with httpx.AsyncClient() as client:
        log = (await client.get(f"{sim_url}/_sim/requests")).json()
    entries = log["requests"] if isinstance(log, dict) else log
    applied: Counter[str] = Counter()
    for entry in entries:
        if entry.get("applied") and entry.get("idempotency_key"):
            applied[entry["idempotency_key"]] += 1
    return applied


def applied_row(scenario: str, keys: list[str], applied: Counter[str]) -> Row:
    """A row for writes counted at the simulator: delivered once each, or lost, or doubled."""
    doubled = sum(max(0, applied[k] - 1) for k in keys)
    return Row(
        scenario=scenario,
        sent=len(keys),
        acknowledged=len(keys),
        in_kafka=len(keys),
        delivered=sum(1 for k in keys if applied[k] >= 1),
        duplicates=doubled,
        unintended=doubled,
        lost=sum(1 for k in keys if applied[k] == 0),
        note="applied at the simulator",
    )


async def until(predicate_name: str, check: object, timeout: float = 60.0) -> None:
    """Poll ``check()`` (sync or async) until true."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {predicate_name}"
        await asyncio.sleep(0.1)
