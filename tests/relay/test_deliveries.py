"""Delivery and dead-letter documents, and the background reporter (pure; a publisher double)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from bridge.kafka.publisher import Headers, Published
from bridge.outbox import OutboxRow, Status
from bridge.relay.deliveries import (
    Reporter,
    claim_tag,
    dead_letter_document,
    delivery_document,
    headers,
    record_key,
)
from tests.relay.support import schema_errors
from tests.support import RecordingPublisher

T0 = 1_700_000_000.0


def row(**overrides: Any) -> OutboxRow:
    values: dict[str, Any] = {
        "id": 41,
        "shop": "cb-taipei",
        "kind": "set_stock",
        "target": "variant:5001",
        "payload": {"command_id": "c1", "quantity": 7, "variant": "5001", "product": "1001"},
        "idempotency_key": "k-41",
        "status": Status.IN_FLIGHT,
        "attempts": 2,
        "next_attempt_at": T0,
        "last_error": None,
        "created_at": T0,
        "updated_at": T0,
        "supersedes": None,
        "lease_owner": "relay-1",
        "lease_until": T0 + 30,
        "done_at": None,
    }
    return OutboxRow(**(values | overrides))


def test_done_document_is_valid() -> None:
    """A done outcome: no error, no next attempt, queued time from created_at."""
    doc = delivery_document(row(), "done", T0 + 2.5)
    assert [] == schema_errors("delivery", doc)
    assert {
        "outbox_id": 41,
        "shop": "cb-taipei",
        "kind": "set_stock",
        "target": "variant:5001",
        "idempotency_key": "k-41",
        "status": "done",
        "attempt": 2,
        "http_status": None,
        "error": None,
        "at": "2023-11-14T22:13:22.500Z",
        "queued_seconds": 2.5,
        "next_attempt_at": None,
    } == doc


def test_retry_document_is_valid() -> None:
    """A retry carries the HTTP status, the error and when the row is due again."""
    doc = delivery_document(
        row(), "retry", T0 + 1, http_status=503, error="503 down", next_attempt_at=T0 + 4
    )
    assert [] == schema_errors("delivery", doc)
    assert "2023-11-14T22:13:24.000Z" == doc["next_attempt_at"]


def test_dead_document_is_valid() -> None:
    """A dead outcome has an error and no next attempt."""
    doc = delivery_document(row(), "dead", T0 + 1, http_status=422, error="add-on missing")
    assert [] == schema_errors("delivery", doc)


@pytest.mark.parametrize(
    ("status", "changes"),
    [
        ("done", {"error": "x"}),
        ("retry", {"next_attempt_at": None}),
        ("dead", {"error": None}),
        ("done", {"http_status": 99}),
        ("lost", {}),
    ],
)
def test_schema_rejects_inconsistent_documents(status: str, changes: dict[str, Any]) -> None:
    """The schema ties error and next_attempt_at to the status."""
    doc = delivery_document(row(), "retry", T0, error="e", next_attempt_at=T0) | {"status": status}
    doc |= changes
    assert [] != schema_errors("delivery", doc)


def test_dead_letter_is_a_valid_dlq_document() -> None:
    """Dead rows go to the dlq topic as kind delivery_failed with the row's payload."""
    doc = dead_letter_document(row(), "HTTP 422: add-on missing", T0)
    assert [] == schema_errors("dlq", doc)
    assert "delivery_failed" == doc["kind"]
    assert 41 == doc["outbox_id"]
    assert 7 == doc["original"]["payload"]["quantity"]


def test_key_and_headers() -> None:
    """Key {shop}:{target}; CloudEvents headers name the outcome."""
    assert b"cb-taipei:variant:5001" == record_key(row())
    hdrs = dict(headers("delivery", row(), T0, "done"))
    assert b"commerce.delivery.done" == hdrs["ce_type"]
    assert f"delivery-41-2.{claim_tag(row())}-done".encode() == hdrs["ce_id"]
    assert b"application/json" == hdrs["content-type"]


def test_ce_id_is_unique_per_claimed_attempt_and_stable_for_one() -> None:
    """The same attempt number under another lease (retry, take-over) gets another ce_id."""
    first = row(attempts=1, lease_owner="relay-1", lease_until=T0 + 30)
    again = row(attempts=1, lease_owner="relay-1", lease_until=T0 + 95)  # after `outbox retry`
    other = row(attempts=1, lease_owner="relay-2", lease_until=T0 + 30)  # another relay

    def ce_id(subject: OutboxRow) -> bytes:
        return dict(headers("delivery", subject, T0, "retry"))["ce_id"]

    assert 3 == len({ce_id(first), ce_id(again), ce_id(other)})
    assert ce_id(first) == ce_id(row(attempts=1, lease_owner="relay-1", lease_until=T0 + 30))


async def test_reporter_publishes_in_the_background() -> None:
    """submit() returns at once; close() flushes everything queued."""
    publisher = RecordingPublisher()
    reporter = Reporter(publisher, workers=2)
    reporter.start()
    for n in range(5):
        reporter.submit("t.deliveries", b"k", {"n": n}, [])
    await reporter.close(timeout=5.0)
    assert [{"n": n} for n in range(5)] == [orjson.loads(r[2]) for r in publisher.records]
    assert 5 == reporter.published


async def test_reporter_drops_and_counts_when_kafka_is_unavailable() -> None:
    """Kafka down: records are dropped and counted, nothing waits or raises."""
    publisher = RecordingPublisher()
    publisher.available = False
    reporter = Reporter(publisher, workers=2)
    reporter.start()
    for n in range(3):
        reporter.submit("t.deliveries", b"k", {"n": n}, [])
    await reporter.close(timeout=5.0)
    assert (0, 3) == (reporter.published, reporter.failed)


class _Stuck:
    """A publisher whose broker never answers."""

    ready = True

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timeout: float
    ) -> Published:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_reporter_never_blocks_when_its_queue_is_full() -> None:
    """A full queue drops the newest record instead of making the sender wait."""
    reporter = Reporter(_Stuck(), capacity=2, workers=1)
    reporter.start()
    for n in range(6):
        reporter.submit("t.deliveries", b"k", {"n": n}, [])
    assert 4 == reporter.failed  # two fit the queue; the worker has not run yet
    await reporter.close(timeout=0.05)
