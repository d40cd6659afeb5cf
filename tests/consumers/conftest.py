"""Fixtures of the consumer tests: a configuration for this test's topics and an outbox on
SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.config import Config, OutboxConfig
from bridge.kafka.topics import Topics
from bridge.outbox.store import OutboxStore, open_store
from tests.consumers.support import consumer_config


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def outbox_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The dsn of an empty outbox database of the parametrised kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    dsn: str = request.getfixturevalue("postgres_schema_dsn")
    return dsn


@pytest.fixture
async def config(
    kafka_topics: Topics, kafka_bootstrap: str, tmp_path: Path, outbox_dsn: str
) -> Config:
    """A configuration for this test's topics and outbox."""
    config = consumer_config(kafka_topics.prefix, kafka_bootstrap, tmp_path)
    return replace(config, outbox=OutboxConfig(dsn=outbox_dsn))


@pytest.fixture
async def store(config: Config) -> AsyncIterator[OutboxStore]:
    """The test's outbox, migrated: what the runtime under test committed is read through it."""
    opened = await open_store(config.outbox.dsn)
    await opened.migrate()
    yield opened
    await opened.close()
