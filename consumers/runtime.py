"""The consume loop every consumer group shares.

Per partition batch: the handler commits its database transaction, *then* the Kafka offset is
committed. A crash in between redelivers the batch, so handlers are idempotent (outbox
idempotency keys, event ids). SIGTERM: the current batch finishes, its offset is committed, the
consumer leaves the group, the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.config import KafkaConfig
from bridge.kafka.topics import client_options
from bridge.log import get_logger

log = get_logger(__name__)

Records = Sequence[ConsumerRecord[bytes, bytes]]
Handler = Callable[[TopicPartition, Records], Awaitable[None]]


@dataclass
class ConsumerMetrics:
    records: Counter
    failures: Counter
    lag: Gauge
    joined: bool = False

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        return cls(
            records=Counter(
                "bridge_consumer_records",
                "Records handled and committed",
                ["group", "topic"],
                registry=registry,
            ),
            failures=Counter(
                "bridge_consumer_batch_failures",
                "Batches whose handler failed (retried)",
                ["group", "topic"],
                registry=registry,
            ),
            lag=Gauge(
                "bridge_consumer_lag",
                "Records behind the partition's high watermark",
                ["group", "topic", "partition"],
                registry=registry,
            ),
        )


async def consume(
    cfg: KafkaConfig,
    group_id: str,
    topics: Sequence[str],
    handler: Handler,
    stop: asyncio.Event,
    *,
    max_records: int = 500,
    retry_delay: float = 1.0,
    started: asyncio.Event | None = None,
    metrics: ConsumerMetrics | None = None,
    **consumer_options: Any,
) -> None:
    """Run ``handler`` over ``topics`` as member of ``group_id`` until ``stop`` is set."""
    consumer = AIOKafkaConsumer(
        *topics,
        **client_options(cfg),
        group_id=group_id,
        client_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **consumer_options,
    )
    await consumer.start()
    log.info("consumer_started", group=group_id, topics=list(topics))
    if started is not None:
        started.set()
    if metrics is not None:
        metrics.joined = True
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=max_records)
            for tp, records in batches.items():
                if not records:
                    continue
                # A failed partition is rewound inside _handle; the other partitions' batches of
                # this poll are still handled (their positions already moved past them).
                handled = await _handle(consumer, handler, tp, records, stop, retry_delay)
                if metrics is not None:
                    assigned = tp in consumer.assignment()
                    highwater = consumer.highwater(tp) if assigned else None
                    _observe(metrics, highwater, group_id, tp, records, handled)
    finally:
        if metrics is not None:
            metrics.joined = False
        await consumer.stop()
        log.info("consumer_stopped", group=group_id)


def _observe(
    metrics: ConsumerMetrics,
    highwater: int | None,
    group: str,
    tp: TopicPartition,
    records: Records,
    handled: bool,
) -> None:
    if handled:
        metrics.records.labels(group, tp.topic).inc(len(records))
        next_offset = records[-1].offset + 1
    else:
        metrics.failures.labels(group, tp.topic).inc()
        next_offset = records[0].offset
    if highwater is not None:
        metrics.lag.labels(group, tp.topic, str(tp.partition)).set(max(0, highwater - next_offset))


async def _handle(
    consumer: AIOKafkaConsumer,
    handler: Handler,
    tp: TopicPartition,
    records: Records,
    stop: asyncio.Event,
    retry_delay: float,
) -> bool:
    """Handle one partition batch and commit it; False when the loop should re-poll."""
    bound = {"topic": tp.topic, "partition": tp.partition, "offset": records[0].offset}
    try:
        await handler(tp, records)
    except Exception as exc:
        # Nothing of this batch is committed: rewind and try again after a pause.
        log.exception("batch_failed", **bound, count=len(records), error=str(exc))
        # Revoked meanwhile (rebalance): its new owner starts from the committed offset.
        with contextlib.suppress(IllegalStateError, AssertionError):
            consumer.seek(tp, records[0].offset)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_delay)
        return False
    try:
        await consumer.commit({tp: records[-1].offset + 1})
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        # A rebalance took the partition away: its new owner re-reads these records, and the
        # handler's idempotency makes that harmless.
        log.warning("offset_commit_failed", **bound, error=str(exc))
        return False
    return True
