"""The one runtime that runs any :class:`~consumers.app.ConsumerApp`.

It opens and migrates the outbox store, connects the Kafka publisher, starts the app, then per
partition batch: ``async with store.transaction() as tx: outgoing = await app.handle(tx, records)``
→ publish ``outgoing`` → commit the offset. The offset moves only after the database commit (and
after the app's records are acknowledged), so a crash anywhere redelivers the batch and the app's
idempotency (outbox keys, event ids) makes that harmless. A failed batch is read again from its
first offset after ``retry_delay``; after ``poison_after`` failures in a row it is handled record
by record, and a record that fails alone is dead-lettered (``poison_record``) so the partition
moves on. SIGTERM: the batch in hand finishes and is committed, the consumer leaves the group.
:func:`run` adds the probes and metrics server (``/healthz``, ``/readyz``, ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from bridge.config import Config
from bridge.kafka.consumer import KafkaConsumer, Partition
from bridge.kafka.publisher import KafkaPublisher, Publisher
from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.ops import ops_app
from bridge.outbox.store import OutboxStore, OutboxTx, open_store
from bridge.serve import running_server
from consumers.app import AppContext, ConsumerApp, Outgoing
from consumers.dead_letters import dead_letter
from consumers.metrics import ConsumerMetrics

log = get_logger(__name__)

StoreOpener = Callable[[str], Awaitable[OutboxStore]]
Isolate = Callable[[], AbstractAsyncContextManager[OutboxTx]]


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    max_records: int = 500  # records per poll, over all partitions
    poll_timeout_ms: int = 300
    retry_delay: float = 1.0  # seconds before a failed batch is read again
    poison_after: int = 3  # failures in a row of one batch before it goes record by record
    publish_timeout: float = 10.0
    consumer_options: Mapping[str, Any] = field(default_factory=dict)  # more aiokafka options


def savepoints_of(tx: OutboxTx) -> Isolate | None:
    """THE one place that decides how a poison record is isolated.

    With ``OutboxTx.savepoint()`` (an async context manager that rolls back to the savepoint on
    exception) every record of a batch runs in its own savepoint of one transaction. A store
    without it gets one transaction per record instead. Once every store has ``savepoint`` in the
    contract, return ``tx.savepoint`` here and drop :meth:`Runtime._transaction_per_record`.
    """
    savepoint: Isolate | None = getattr(tx, "savepoint", None)
    return savepoint


class Runtime:
    """Runs ``app`` until ``stop`` is set; ``joined`` says whether it is a member of its group."""

    def __init__(
        self,
        app: ConsumerApp,
        config: Config,
        *,
        options: RuntimeOptions | None = None,
        metrics: ConsumerMetrics | None = None,
        store_opener: StoreOpener = open_store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.config = config
        self.options = options or RuntimeOptions()
        self.metrics = metrics
        self.topics = Topics.from_config(config.kafka)
        self.joined = False
        self._open_store = store_opener
        self.clock = clock
        self.log = log.bind(app=app.name, group=app.group_id)
        self._failures: dict[Partition, tuple[int, int]] = {}  # partition → (offset, failures)

    def readiness(self) -> tuple[bool, Mapping[str, Any]]:
        """For ``/readyz``: ready once the consumer joined its group."""
        return self.joined, {"app": self.app.name, "group": self.app.group_id}

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        store = await self._open_store(self.config.outbox.dsn)
        publisher = KafkaPublisher(self.config.kafka, client_id=self.app.group_id)
        try:
            await store.migrate()
            if not await publisher.start_until(stop):
                return  # stopped before Kafka was reachable
            await self.app.start(AppContext(self.config, self.topics, store, publisher))
            try:
                await self._consume(store, publisher, stop, started)
            finally:
                await self.app.stop()
        finally:
            await publisher.stop()
            await store.close()

    async def _consume(
        self,
        store: OutboxStore,
        publisher: Publisher,
        stop: asyncio.Event,
        started: asyncio.Event | None,
    ) -> None:
        topics = list(self.app.topics(self.topics))
        consumer = KafkaConsumer(
            self.config.kafka, self.app.group_id, topics, **self.options.consumer_options
        )
        if not await consumer.start_until(stop):
            return
        self.joined = True
        if started is not None:
            started.set()
        batch = _Batch(self, store, publisher)
        try:
            while not stop.is_set():
                polled = await consumer.poll(self.options.poll_timeout_ms, self.options.max_records)
                for partition, records in polled.items():
                    if stop.is_set():
                        break  # not committed: read again by whoever owns the partition next
                    await self._partition(consumer, batch, partition, records, stop)
        finally:
            self.joined = False
            await consumer.stop()

    async def _partition(
        self,
        consumer: KafkaConsumer,
        batch: _Batch,
        partition: Partition,
        records: Sequence[Record],
        stop: asyncio.Event,
    ) -> None:
        """Handle, publish and commit one partition's batch; on failure rewind and pause."""
        first, next_offset = records[0].offset, records[-1].offset + 1
        offset, failures = self._failures.get(partition, (first, 0))
        one_by_one = offset == first and failures >= self.options.poison_after
        bound = {"topic": partition.topic, "partition": partition.partition, "offset": first}
        try:
            done = await (batch.one_by_one(records) if one_by_one else batch.together(records))
            await batch.publish(done.outgoing)
        except Exception as exc:
            failures = failures + 1 if offset == first else 1
            self._failures[partition] = (first, failures)
            self.log.exception(
                "batch_failed", **bound, count=len(records), failures=failures, error=str(exc)
            )
            if self.metrics is not None:
                self.metrics.failures.labels(self.app.group_id, partition.topic).inc()
            consumer.rewind(partition, first)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.retry_delay)
            self._observe_lag(consumer, partition, first)
            return
        self._failures.pop(partition, None)
        if await consumer.commit(partition, next_offset) and self.metrics is not None:
            self.metrics.records.labels(self.app.group_id, partition.topic).inc(len(records))
            self.metrics.poison.labels(self.app.group_id, partition.topic).inc(done.poisoned)
        self._observe_lag(consumer, partition, next_offset)

    def _observe_lag(self, consumer: KafkaConsumer, partition: Partition, next_offset: int) -> None:
        lag = consumer.lag(partition, next_offset)
        if lag is not None and self.metrics is not None:
            labels = (self.app.group_id, partition.topic, str(partition.partition))
            self.metrics.lag.labels(*labels).set(lag)


@dataclass(frozen=True, slots=True)
class _Done:
    outgoing: list[Outgoing]
    poisoned: int = 0  # how many of ``outgoing`` are poison_record dead letters


class _Batch:
    """The ways one partition batch is handled: together, or record by record."""

    def __init__(self, runtime: Runtime, store: OutboxStore, publisher: Publisher) -> None:
        self.runtime = runtime
        self.app = runtime.app
        self.store = store
        self.publisher = publisher

    async def together(self, records: Sequence[Record]) -> _Done:
        async with self.store.transaction() as tx:
            return _Done(list(await self.app.handle(tx, records)))

    async def publish(self, outgoing: Sequence[Outgoing]) -> None:
        timeout = self.runtime.options.publish_timeout
        for record in outgoing:
            await self.publisher.publish(
                record.topic, record.key, record.value, record.headers, timeout
            )

    async def one_by_one(self, records: Sequence[Record]) -> _Done:
        """Each record on its own; one that fails alone becomes a ``poison_record`` dead letter."""
        outgoing: list[Outgoing] = []
        failed: list[tuple[Record, Exception]] = []
        async with self.store.transaction() as tx:
            isolate = savepoints_of(tx)
            if isolate is not None:
                for record in records:
                    try:
                        async with isolate() as inner:
                            outgoing += await self.app.handle(inner, [record])
                    except Exception as exc:
                        failed.append((record, exc))
        if isolate is None:
            outgoing, failed = await self._transaction_per_record(records)
        letters = [self._poisoned(record, exc) for record, exc in failed]
        return _Done(outgoing + letters, len(letters))

    async def _transaction_per_record(
        self, records: Sequence[Record]
    ) -> tuple[list[Outgoing], list[tuple[Record, Exception]]]:
        outgoing: list[Outgoing] = []
        failed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                outgoing += (await self.together([record])).outgoing
            except Exception as exc:
                failed.append((record, exc))
        if failed:
            # The records failed, not the database: a transaction must still commit now
            # (raises otherwise, and the batch is retried instead of dead-lettered).
            async with self.store.transaction() as tx:
                await tx.get_state("bridge.runtime", "probe")
        return outgoing, failed

    def _poisoned(self, record: Record, exc: Exception) -> Outgoing:
        runtime = self.runtime
        reason = f"{type(exc).__name__}: {exc}"
        runtime.log.warning(
            "poison_record_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=reason,
        )
        return dead_letter(
            "poison_record",
            reason,
            record,
            runtime.clock(),
            topic=runtime.topics.dlq,
            app=self.app.name,
        )


async def run(
    app: ConsumerApp,
    config: Config,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    *,
    options: RuntimeOptions | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int = 0,
) -> None:
    """Run ``app`` until ``stop`` is set, serving ``/healthz``, ``/readyz`` and ``/metrics`` on
    ``metrics_port`` unless it is 0."""
    registry = CollectorRegistry()
    own = getattr(app, "metrics_registry", None)  # an app's own metrics, on /metrics too
    if isinstance(own, CollectorRegistry):
        registry.register(own)
    runtime = Runtime(app, config, options=options, metrics=ConsumerMetrics.create(registry))
    async with contextlib.AsyncExitStack() as stack:
        if metrics_port:
            ops = ops_app(registry, runtime.readiness)
            server = running_server(ops, host=metrics_host, port=metrics_port)
            url = await stack.enter_async_context(server)
            runtime.log.info("consumer_metrics_listening", url=url)
        await runtime.run(stop, started)
