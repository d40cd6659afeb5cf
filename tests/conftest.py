"""Session fixtures: the real Kafka broker and the real PostgreSQL server, each started once."""

from __future__ import annotations

from tests.kafka_harness import kafka_bootstrap, kafka_topics, topic_prefix  # noqa: F401
from tests.postgres_harness import postgres_dsn, postgres_schema_dsn  # noqa: F401
