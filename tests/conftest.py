"""Session fixtures: the real Kafka broker and the real PostgreSQL server, each started once."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from tests.kafka_harness import kafka_bootstrap, kafka_topics, topic_prefix  # noqa: F401
from tests.postgres_harness import postgres_dsn, postgres_schema_dsn  # noqa: F401


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs `bridge …` configures logging onto its captured stderr; undo that, so later
    log lines (e.g. the broker fixture stopping) never write to a closed capture stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level
