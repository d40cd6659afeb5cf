"""What the relay tells Kafka: delivery outcomes and dead letters, published off the send path.

The documents are pure functions of an outbox row (``schemas/delivery.v1.json``,
``schemas/dlq.v1.json`` kind ``delivery_failed``). :class:`Reporter` publishes them from a bounded
queue with a few worker tasks, so a slow or absent broker never delays a platform write: when the
queue is full, or Kafka does not acknowledge in time, the record is dropped, logged and counted.
The outbox database already holds the outcome; the topic is a notification of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from bridge.errors import PublishUnavailable
from bridge.kafka.cloudevents import binary_headers
from bridge.kafka.publisher import Publisher
from bridge.log import get_logger
from bridge.outbox.store import OutboxRow
from bridge.relay.metrics import RelayMetrics
from bridge.times import rfc3339

log = get_logger(__name__)

DeliveryStatus = Literal["done", "retry", "dead"]
SOURCE = "/bridge/relay"


def _time(seconds: float) -> str:
    return rfc3339(datetime.fromtimestamp(seconds, UTC), "milliseconds")


def record_key(row: OutboxRow) -> bytes:
    """``{shop}:{target}``: every outcome of one target lands on one partition, in order."""
    return f"{row.shop}:{row.target}".encode()


def delivery_document(
    row: OutboxRow,
    status: DeliveryStatus,
    now: float,
    *,
    http_status: int | None = None,
    error: str | None = None,
    next_attempt_at: float | None = None,
) -> dict[str, Any]:
    """The ``commerce.deliveries`` value for one outcome of ``row``'s current attempt."""
    return {
        "outbox_id": row.id,
        "shop": row.shop,
        "kind": row.kind,
        "target": row.target,
        "idempotency_key": row.idempotency_key,
        "status": status,
        "attempt": max(1, row.attempts),
        "http_status": http_status,
        "error": error,
        "at": _time(now),
        "queued_seconds": round(max(0.0, now - row.created_at), 6),
        "next_attempt_at": None if next_attempt_at is None else _time(next_attempt_at),
    }


def dead_letter_document(row: OutboxRow, reason: str, now: float) -> dict[str, Any]:
    """The ``commerce.dlq`` value (kind ``delivery_failed``) for a row that died."""
    return {
        "kind": "delivery_failed",
        "reason": reason or "failed permanently",
        "at": _time(now),
        "source": None,
        "shop": row.shop,
        "outbox_id": row.id,
        "idempotency_key": row.idempotency_key,
        "original": {"kind": row.kind, "target": row.target, "payload": dict(row.payload)},
    }


def claim_tag(row: OutboxRow) -> str:
    """8 hex digits naming the claim that produced this attempt: its lease (owner and expiry).

    The attempt number alone repeats (``outbox retry`` resets it; a lease taken over by another
    relay sends the same number again); the lease does not, and it is the same for every outcome
    of one claimed attempt, so publishing that outcome again keeps its id.
    """
    lease = f"{row.lease_owner or ''}|{row.lease_until!r}".encode()
    return hashlib.blake2b(lease, digest_size=4).hexdigest()


def event_id(kind: str, row: OutboxRow, status: str) -> str:
    """``{kind}-{outbox id}-{attempt}.{claim tag}-{status}``: unique per attempt and outcome."""
    return f"{kind}-{row.id}-{row.attempts}.{claim_tag(row)}-{status}"


def headers(kind: str, subject: OutboxRow, now: float, status: str) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers: ``ce_type`` is ``commerce.{kind}.{status}``."""
    return binary_headers(
        id=event_id(kind, subject, status),
        source=SOURCE,
        type=f"commerce.{kind}.{status}",
        subject=record_key(subject).decode(),
        time=datetime.fromtimestamp(now, UTC),
    )


@dataclass(frozen=True, slots=True)
class _Record:
    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class Reporter:
    """Publishes records in the background; ``submit`` never waits. ``close`` flushes."""

    def __init__(
        self,
        publisher: Publisher,
        metrics: RelayMetrics | None = None,
        *,
        capacity: int = 50_000,
        workers: int = 64,
        timeout: float = 10.0,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.timeout = timeout
        self.published = 0
        self.failed = 0
        self._queue: asyncio.Queue[_Record] = asyncio.Queue(maxsize=capacity)
        self._workers: list[asyncio.Task[None]] = []
        self._count = workers

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"relay-reporter-{i}")
                for i in range(self._count)
            ]

    def submit(self, topic: str, key: bytes, document: dict[str, Any], hdrs: list[Any]) -> None:
        record = _Record(topic, key, orjson.dumps(document), hdrs)
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._failed(record, "queue_full", "the publish queue is full")

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _work(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self.publisher.publish(
                    record.topic, record.key, record.value, record.headers, timeout=self.timeout
                )
                self.published += 1
            except PublishUnavailable as exc:
                self._failed(record, "unavailable", str(exc))
            except Exception as exc:  # a bug must not kill the worker: log it and carry on
                log.exception("relay_publish_error", topic=record.topic)
                self._failed(record, "error", repr(exc))
            finally:
                self._queue.task_done()

    def _failed(self, record: _Record, reason: str, detail: str) -> None:
        self.failed += 1
        if self.metrics is not None:
            self.metrics.publish_failures.labels(record.topic, reason).inc()
        # While Kafka is down every record fails: log the 1st, 2nd, 4th, … and every 1000th.
        if self.failed & (self.failed - 1) == 0 or self.failed % 1000 == 0:
            log.warning(
                "relay_publish_dropped",
                topic=record.topic,
                key=record.key.decode(),
                error=detail,
                dropped_so_far=self.failed,
            )

    async def close(self, timeout: float) -> None:
        """Publish what is queued (at most ``timeout`` seconds), then stop the workers."""
        if self._workers:
            try:
                async with asyncio.timeout(timeout):
                    await self._queue.join()
            except TimeoutError:
                log.warning("relay_publish_flush_timeout", unpublished=self._queue.qsize())
            for task in self._workers:
                task.cancel()
            for task in self._workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._workers = []
