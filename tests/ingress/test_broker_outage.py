"""Kafka going away: the ingress answers 503 + Retry-After, and accepts again once it is back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bridge.config import Config
from bridge.devtools.kafka.local import LocalKafka
from bridge.devtools.sign import sign_request
from bridge.ingress.app import create_app
from bridge.kafka.topics import ensure_topics
from tests.ingress.test_kafka import read_topic, serve_ingress
from tests.support import fixture_bytes, make_config

pytestmark = pytest.mark.kafka


async def post(base_url: str, config: Config, body: bytes) -> httpx.Response:
    shop = config.shops["bento-bkk"]
    suffix, headers = sign_request(shop, body, "variant.update", time.time())
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{base_url}/webhooks/bento-bkk{suffix}", content=body, headers=headers
        )


async def test_stopped_broker_gives_503_then_202_when_back(tmp_path: Path) -> None:
    """With the broker down a webhook gets 503 + Retry-After; after restart the same one gets 202."""
    kafka = LocalKafka(tmp_path / "kafka")
    bootstrap = await asyncio.to_thread(kafka.start)
    try:
        config = make_config(prefix="outage", bootstrap=bootstrap)
        config = replace(config, ingress=replace(config.ingress, publish_timeout=2.0))
        await ensure_topics(config.kafka)
        async with serve_ingress(create_app(config)) as base_url:
            warm = fixture_bytes("bentoweb/variant.json")
            assert 202 == (await post(base_url, config, warm)).status_code

            await asyncio.to_thread(kafka.stop)
            body = warm.replace(b'"new_stock": 0', b'"new_stock": 3')
            assert body != warm
            down = await post(base_url, config, body)
            assert (503, "5") == (down.status_code, down.headers.get("retry-after"))
            assert "unavailable" == down.json()["error"]

            restarted = LocalKafka(tmp_path / "kafka", port=int(bootstrap.rsplit(":", 1)[1]))
            await asyncio.to_thread(restarted.start)
            kafka = restarted
            deadline = time.monotonic() + 60
            while (answer := await post(base_url, config, body)).status_code == 503:
                assert time.monotonic() < deadline, "ingress never recovered"
                await asyncio.sleep(0.5)
            assert 202 == answer.status_code
            event_id = answer.json()["id"]
        records = await read_topic(config, "outage.variants", 2)
        assert event_id in {dict(r.headers)["ce_id"].decode() for r in records}
    finally:
        await asyncio.to_thread(kafka.stop)
