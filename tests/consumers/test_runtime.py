"""The shared consume loop on the real broker: a failing partition loses nothing, anywhere."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from bridge.config import KafkaConfig
from bridge.kafka.topics import Topics
from consumers.runtime import ConsumerMetrics, Records, consume

pytestmark = pytest.mark.kafka


async def test_a_failing_partition_loses_no_record_of_the_others(
    kafka_bootstrap: str, kafka_topics: Topics, topic_prefix: str
) -> None:
    """When one partition's batch fails, it is retried, and the batches of the other partitions
    fetched in the same poll are still handled: every record is handled and committed."""
    cfg = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    topic = kafka_topics.commands
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(60):
            await producer.send(topic, f"v{n}".encode(), partition=n % 3)
        await producer.flush()
    finally:
        await producer.stop()

    handled: set[tuple[int, int]] = set()
    failed_once: set[int] = set()
    stop = asyncio.Event()

    async def handler(tp: TopicPartition, records: Records) -> None:
        if tp.partition == 0 and 0 not in failed_once:
            failed_once.add(0)
            raise RuntimeError("database unavailable (once)")
        handled.update((r.partition, r.offset) for r in records)
        if len(handled) == 60:
            stop.set()

    metrics = ConsumerMetrics.create(CollectorRegistry())
    task = asyncio.create_task(
        consume(cfg, f"{topic_prefix}-g", [topic], handler, stop, retry_delay=0.05, metrics=metrics)
    )
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        await asyncio.wait({task}, timeout=0.1)
        if task.done():
            break
    stop.set()
    await task
    assert {(p, o) for p in range(3) for o in range(20)} == handled
    assert {0} == failed_once
    failures = metrics.failures.labels(f"{topic_prefix}-g", topic)._value.get()
    assert 1.0 == failures
