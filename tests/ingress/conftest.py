"""Fixtures of the ingress tests against the real broker: a config with fresh topics, a server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.config import Config
from bridge.ingress.app import create_app
from bridge.kafka.topics import ensure_topics
from tests.ingress.test_kafka import serve_ingress
from tests.support import make_config


@pytest.fixture
async def config(kafka_bootstrap: str, topic_prefix: str) -> Config:
    config = make_config(prefix=topic_prefix, bootstrap=kafka_bootstrap)
    await ensure_topics(config.kafka)
    return config


@pytest.fixture
async def ingress(config: Config) -> AsyncIterator[str]:
    async with serve_ingress(create_app(config)) as base_url:
        yield base_url
