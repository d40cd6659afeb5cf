"""The one seam between the bridge and a Kafka consumer: aiokafka in, bridge Records out.

:class:`KafkaConsumer` joins a consumer group with manual commits (``enable_auto_commit`` off,
``auto_offset_reset=earliest``) and hands out :class:`~bridge.kafka.records.Record` values: the
JSON value decoded with orjson, the CloudEvents ``ce_*`` headers as a
:class:`~bridge.kafka.records.CloudEvent`. Nothing outside this module imports aiokafka's consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from bridge.config import KafkaConfig
from bridge.kafka.records import CloudEvent, Record
from bridge.kafka.topics import client_options
from bridge.log import get_logger

log = get_logger(__name__)

_CE = ("ce_id", "ce_source", "ce_type", "ce_time", "ce_specversion", "ce_subject")


class Partition(NamedTuple):
    topic: str
    partition: int


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def decode_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    timestamp_ms: int,
) -> Record:
    """A bridge Record from a Kafka record's parts (pure; of a repeated header the first wins)."""
    named: dict[str, bytes] = {}
    for name, header in headers:
        named.setdefault(name, header)
    ce = CloudEvent(*(_text(named.get(name)) for name in _CE))
    raw = value or b""
    decoded: Any = None
    error: str | None = None
    if not raw:
        error = "empty value"
    else:
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            error = f"not valid JSON: {exc.msg}"
    return Record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=_text(key),
        ce=ce,
        headers=named,
        value=decoded,
        raw=raw,
        timestamp_ms=timestamp_ms,
        decode_error=error,
    )


def _from_kafka(record: ConsumerRecord[bytes, bytes]) -> Record:
    return decode_record(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        [(name, bytes(value)) for name, value in record.headers],
        record.timestamp,
    )


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped here
    def __init__(self, group_id: str) -> None:
        self.group_id = group_id

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # Nothing to do: an offset is committed right after each batch, and a revoked batch in
        # flight fails its commit, so the new owner re-reads it from the committed offset.
        if revoked:
            log.info("partitions_revoked", group=self.group_id, partitions=_names(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("partitions_assigned", group=self.group_id, partitions=_names(assigned))


def _names(partitions: Sequence[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)


class KafkaConsumer:
    """A member of ``group_id`` reading ``topics``; offsets move only through :meth:`commit`."""

    def __init__(
        self,
        cfg: KafkaConfig,
        group_id: str,
        topics: Sequence[str],
        **options: Any,
    ) -> None:
        self._cfg = cfg
        self.group_id = group_id
        self.topics = list(topics)
        self._options = options
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def started(self) -> bool:
        return self._consumer is not None

    def _create(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            **client_options(self._cfg),
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._options,
        )
        consumer.subscribe(self.topics, listener=_Rebalances(self.group_id))
        return consumer

    async def start_until(self, stop: asyncio.Event, *, retry_delay: float = 0.5) -> bool:
        """Connect, retrying while Kafka is unreachable; False if ``stop`` was set first."""
        delay = retry_delay
        while not stop.is_set():
            consumer = self._create()
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                await consumer.stop()
                log.warning("kafka_consumer_connect_failed", error=str(exc), retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10.0)
                continue
            self._consumer = consumer
            log.info("consumer_started", group=self.group_id, topics=self.topics)
            return True
        return False

    async def stop(self) -> None:
        """Leave the group (the partitions go to the other members at once) and close."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
            log.info("consumer_stopped", group=self.group_id)

    def _live(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the consumer is not started")
        return self._consumer

    async def poll(self, timeout_ms: int, max_records: int) -> dict[Partition, list[Record]]:
        """The records fetched since the last poll, per partition in offset order."""
        batches = await self._live().getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {
            Partition(tp.topic, tp.partition): [_from_kafka(r) for r in records]
            for tp, records in batches.items()
            if records
        }

    async def commit(self, partition: Partition, next_offset: int) -> bool:
        """Commit ``next_offset`` (the next record to read); False when the group moved on."""
        try:
            await self._live().commit({TopicPartition(*partition): next_offset})
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # A rebalance took the partition away: its new owner re-reads from the committed
            # offset, and the app's idempotency makes that harmless.
            log.warning(
                "offset_commit_failed",
                topic=partition.topic,
                partition=partition.partition,
                offset=next_offset,
                error=str(exc),
            )
            return False
        return True

    def rewind(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` again from ``offset``; nothing to do once it was revoked."""
        with contextlib.suppress(IllegalStateError, AssertionError):
            self._live().seek(TopicPartition(*partition), offset)

    def lag(self, partition: Partition, next_offset: int) -> int | None:
        """Records between ``next_offset`` and the high watermark last fetched (None: unknown)."""
        consumer = self._live()
        tp = TopicPartition(*partition)
        if tp not in consumer.assignment():
            return None
        highwater = consumer.highwater(tp)
        return None if highwater is None else max(0, highwater - next_offset)
