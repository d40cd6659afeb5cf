"""Session fixtures: the real Kafka broker and the real PostgreSQL server, each started once."""

from __future__ import annotations

import logging
import threading
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


@pytest.fixture(autouse=True)
def _no_leaked_sqlite_connection() -> Iterator[None]:
    """Fail the test that leaves an aiosqlite connection open: its worker thread is not a daemon,
    so one leak keeps the interpreter from exiting after the last test (CI hung on exactly that)."""
    before = set(threading.enumerate())
    yield
    leaked = []
    for thread in set(threading.enumerate()) - before:
        if thread.name.endswith("(_connection_worker_thread)"):
            thread.join(timeout=2.0)  # a connection being closed ends its thread promptly
            if thread.is_alive():
                leaked.append(thread.name)
    assert [] == leaked, "aiosqlite connection(s) left open: close every store the test opens"
