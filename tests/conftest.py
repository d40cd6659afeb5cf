"""Session fixtures: the real Kafka broker and the real PostgreSQL server, each started once."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
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


def pytest_unconfigure(config: pytest.Config) -> None:
    """A non-daemon thread still running after the last test would keep the interpreter from
    exiting, and CI would only see a timeout: name it with its stack and exit 3 instead."""
    stuck = [t for t in threading.enumerate() if _blocks_exit(t)]
    for thread in stuck:
        thread.join(timeout=5.0)
    stuck = [t for t in stuck if t.is_alive()]
    if not stuck:
        return
    frames = sys._current_frames()
    report = ["", f"{len(stuck)} non-daemon thread(s) still running after the last test:"]
    for thread in stuck:
        frame = frames.get(thread.ident or -1)
        report += [f"--- {thread.name}", *traceback.format_stack(frame)] if frame else []
    sys.stderr.write("\n".join(report) + "\n")
    sys.stderr.flush()
    os._exit(3)


def _blocks_exit(thread: threading.Thread) -> bool:
    """Non-daemon, alive, and not an idle executor worker (those are stopped at exit)."""
    if thread is threading.main_thread() or thread.daemon or not thread.is_alive():
        return False
    target = getattr(thread, "_target", None)
    return getattr(target, "__module__", "") != "concurrent.futures.thread"
