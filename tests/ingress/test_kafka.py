"""Ingress against the real Kafka broker: what lands on the topics, and what never does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from jsonschema import Draft202012Validator
from starlette.applications import Starlette

from bridge.config import Config
from bridge.devtools.sign import sign_request
from bridge.ingress.app import create_app
from bridge.kafka.topics import ensure_topics
from bridge.privacy import Privacy
from bridge.serve import running_server
from tests.support import fixture_bytes, make_config

pytestmark = pytest.mark.kafka
SCHEMAS = Path(__file__).parents[2] / "schemas"


def validator(entity: str) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads((SCHEMAS / f"{entity}.v1.json").read_bytes()))


@contextlib.asynccontextmanager
async def serve_ingress(app: Starlette) -> AsyncIterator[str]:
    """The webhook app and its ops app, each on its own port; the webhook URL once ready."""
    async with running_server(app.state.ops) as ops_url, running_server(app) as base_url:
        await wait_ready(ops_url)
        yield base_url


async def wait_ready(ops_url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while (await client.get(f"{ops_url}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "ingress never became ready"
            await asyncio.sleep(0.05)


async def post(base_url: str, config: Config, shop: str, body: bytes, event: str) -> httpx.Response:
    suffix, headers = sign_request(config.shops[shop], body, event, time.time())
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{base_url}/webhooks/{shop}{suffix}", content=body, headers=headers
        )


async def read_topic(config: Config, topic: str, minimum: int, timeout: float = 20.0) -> list[Any]:
    """Every record on ``topic`` (all partitions, from the start), once at least ``minimum`` arrived
    and the end offsets were reached."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        # ensure_topics created them with config.kafka.partitions partitions
        partitions = [TopicPartition(topic, p) for p in range(config.kafka.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for items in batch.values():
                records.extend(items)
            if len(records) >= minimum:
                ends = await consumer.end_offsets(partitions)
                positions = {tp: await consumer.position(tp) for tp in partitions}
                if all(positions[tp] >= ends[tp] for tp in partitions):
                    return records
        return records
    finally:
        await consumer.stop()


CASES = [
    ("bento-bkk", "bentoweb/order.json", "order.paid", "orders", "order", "commerce.order.paid"),
    ("bento-bkk", "bentoweb/variant.json", "variant.update", "variants", "variant", "commerce.variant.updated"),
    ("bento-bkk", "bentoweb/product.json", "product.update", "products", "product", "commerce.product.updated"),
    ("cb-taipei", "cyberbiz/order.json", "orders/paid", "orders", "order", "commerce.order.paid"),
    ("cb-taipei", "cyberbiz/variant.json", "variants/update", "variants", "variant", "commerce.variant.updated"),
]  # fmt: skip


@pytest.mark.parametrize(("shop", "fixture", "event", "topic", "entity", "ce_type"), CASES)
async def test_seed_payload_lands_as_a_cloudevent(
    ingress: str, config: Config, shop: str, fixture: str, event: str, topic: str, entity: str,
    ce_type: str,
) -> None:  # fmt: skip
    """A signed seed payload comes back from its topic with CloudEvents headers and a valid value."""
    body = fixture_bytes(fixture)
    response = await post(ingress, config, shop, body, event)
    assert 202 == response.status_code, response.text
    full_topic = f"{config.kafka.topic_prefix}.{topic}"
    assert full_topic == response.json()["topic"]
    (record,) = await read_topic(config, full_topic, 1)
    headers = {k: v.decode() for k, v in record.headers}
    value = orjson.loads(record.value)
    platform = config.shops[shop].platform
    assert {
        "ce_specversion": "1.0",
        "ce_id": response.json()["id"],
        "ce_source": f"/{platform}/{shop}",
        "ce_type": ce_type,
        "content-type": "application/json",
    }.items() <= headers.items()
    assert headers["ce_time"].endswith("Z")
    assert record.key.decode().startswith(f"{shop}:")
    assert [] == [e.message for e in validator(entity).iter_errors(value)]


async def test_pii_is_encrypted_on_kafka_and_decryptable(ingress: str, config: Config) -> None:
    """Customer e-mail in the BentoWeb order is not on Kafka in clear, and decrypts back."""
    body = fixture_bytes("bentoweb/order.json")
    assert 202 == (await post(ingress, config, "bento-bkk", body, "order.new")).status_code
    (record,) = await read_topic(config, f"{config.kafka.topic_prefix}.orders", 1)
    assert b"@gmail.com" not in record.value
    email = orjson.loads(record.value)["raw"]["data"]["order"]["email"]
    assert email.startswith("enc:v1:")
    assert "********@gmail.com" == Privacy(config.privacy).decrypt(email)


async def test_bad_signature_publishes_nothing(ingress: str, config: Config) -> None:
    """A forged webhook gets 401 and never reaches Kafka; a redelivery is published once."""
    body = fixture_bytes("cyberbiz/variant.json")
    suffix, headers = sign_request(config.shops["cb-taipei"], body, "variants/update", time.time())
    forged = body.replace(b"inventory_quantity", b"inventory_quantitx")
    async with httpx.AsyncClient() as client:
        rejected = await client.post(
            f"{ingress}/webhooks/cb-taipei{suffix}", content=forged, headers=headers
        )
        accepted = await client.post(
            f"{ingress}/webhooks/cb-taipei{suffix}", content=body, headers=headers
        )
        again = await client.post(
            f"{ingress}/webhooks/cb-taipei{suffix}", content=body, headers=headers
        )
    assert (401, 202, 200) == (rejected.status_code, accepted.status_code, again.status_code)
    records = await read_topic(config, f"{config.kafka.topic_prefix}.variants", 1)
    assert [accepted.json()["id"]] == [dict(r.headers)["ce_id"].decode() for r in records]


async def test_streamed_oversize_body_is_413(ingress: str, config: Config) -> None:
    """3 MB sent chunked (no Content-Length) is refused with 413 while streaming."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": 1, "pad": "'
        for _ in range(48):
            yield b"x" * 65536
        yield b'"}'

    _suffix, headers = sign_request(
        config.shops["cb-taipei"], b"{}", "variants/update", time.time()
    )
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{ingress}/webhooks/cb-taipei", content=chunks(), headers=headers
        )
    assert (413, "payload_too_large") == (response.status_code, response.json()["error"])


def padded_variant(size: int) -> bytes:
    """The BentoWeb seed variant grown to ``size`` bytes by an extra field (kept in ``raw``)."""
    body = fixture_bytes("bentoweb/variant.json").rstrip()
    head = body[:-1].rstrip() + b', "pad": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_a_1_9_mib_webhook_is_published_and_readable(ingress: str, config: Config) -> None:
    """A 1.9 MiB webhook (under max_body_bytes, over the broker's 1 MiB default) gets 202 and its
    record comes back from the topic whole."""
    body = padded_variant(int(1.9 * 1024 * 1024))
    response = await post(ingress, config, "bento-bkk", body, "variant.update")
    assert 202 == response.status_code, response.text
    (record,) = await read_topic(config, f"{config.kafka.topic_prefix}.variants", 1)
    assert orjson.loads(body)["pad"] == orjson.loads(record.value)["raw"]["pad"]


async def test_a_record_the_broker_refuses_as_too_large_is_413(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Topics made for 64 KiB bodies (192 KiB records) refuse a 500 KiB webhook: 413 with a JSON
    reason, not a 503 the platform would retry forever."""
    config = make_config(prefix=topic_prefix, bootstrap=kafka_bootstrap)
    await ensure_topics(config.kafka, max_body_bytes=64 * 1024)
    async with serve_ingress(create_app(config)) as base_url:
        body = padded_variant(500 * 1024)
        response = await post(base_url, config, "bento-bkk", body, "variant.update")
    assert (413, "record_too_large") == (response.status_code, response.json()["error"])
