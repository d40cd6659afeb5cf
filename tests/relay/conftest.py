"""The real broker and PostgreSQL fixtures, until tests/conftest.py provides them suite-wide."""

from __future__ import annotations

import tests.conftest as root

if not hasattr(root, "kafka_bootstrap"):
    from tests.kafka_harness import kafka_bootstrap, kafka_topics, topic_prefix  # noqa: F401
if not hasattr(root, "postgres_dsn"):
    from tests.postgres_harness import postgres_dsn, postgres_schema_dsn  # noqa: F401
