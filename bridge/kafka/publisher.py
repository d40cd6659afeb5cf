"""The one seam between the bridge and a Kafka producer.

Domain code depends on :class:`Publisher`; :class:`KafkaPublisher` wraps aiokafka with
``acks=all`` and idempotence, and answers only once the broker acknowledged the write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from bridge.config import KafkaConfig
from bridge.deadline import Deadline
from bridge.errors import BridgeError, PublishUnavailable
from bridge.kafka.topics import client_options, record_limit
from bridge.log import get_logger

log = get_logger(__name__)

Headers = Sequence[tuple[str, bytes]]


def producer_options(
    cfg: KafkaConfig, client_id: str, max_request_size: int | None = None
) -> dict[str, Any]:
    """Every keyword argument of the bridge's ``AIOKafkaProducer`` (the bench's raw-producer
    baseline uses the same): acknowledged by all in-sync replicas, idempotent, batched, and
    requests as large as the topics' ``max.message.bytes`` (:func:`record_limit`)."""
    return {
        **client_options(cfg),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": cfg.linger_ms,
        "max_batch_size": 256 * 1024,
        "max_request_size": max_request_size or record_limit(),
        "request_timeout_ms": 30_000,
    }


async def _settled(ack: asyncio.Future[Any]) -> Any:
    """``ack``'s result; a cancellation of the waiting task leaves ``ack`` itself alone."""
    if not ack.done():
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(_ack: asyncio.Future[Any]) -> None:
            if not waiter.done():
                waiter.set_result(None)

        ack.add_done_callback(wake)
        try:
            await waiter
        finally:
            ack.remove_done_callback(wake)
    return ack.result()


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    partition: int
    offset: int


class RecordTooLarge(BridgeError):
    """The record exceeds what the producer or the broker takes; retrying cannot help."""


class Publisher(Protocol):
    @property
    def ready(self) -> bool: ...

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timeout: float
    ) -> Published:
        """Return once the broker acknowledged; raise RecordTooLarge for a record no retry can
        write, PublishUnavailable otherwise."""
        ...


class KafkaPublisher:
    """aiokafka producer that keeps trying to connect in the background until it can."""

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        client_id: str = "commerce-bridge",
        max_request_size: int | None = None,
    ) -> None:
        self._cfg = cfg
        self._max_request_size = max_request_size or record_limit()
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None
        self._late: set[asyncio.Future[Any]] = set()

    @property
    def ready(self) -> bool:
        return self._producer is not None

    async def start(self, *, wait: bool = False) -> None:
        """Start connecting; with ``wait`` block until the first connection succeeded."""
        self._connector = asyncio.create_task(self._connect_forever(), name="kafka-connect")
        if wait:
            await asyncio.shield(self._connector)

    async def start_until(self, stop: asyncio.Event) -> bool:
        """Start and wait for the first connection, unless ``stop`` is set first (False then)."""
        await self.start()
        assert self._connector is not None  # noqa: S101 - start() just created it
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({self._connector, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        return self.ready

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            producer = AIOKafkaProducer(
                **producer_options(self._cfg, self._client_id, self._max_request_size)
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                await producer.stop()
                log.warning("kafka_connect_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            log.info("kafka_producer_ready", bootstrap_servers=self._cfg.bootstrap_servers)
            return

    async def stop(self) -> None:
        """Flush what is buffered, then close."""
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timeout: float
    ) -> Published:
        producer = self._producer
        if producer is None:
            raise PublishUnavailable("kafka producer is not connected yet")
        ack: asyncio.Future[Any] | None = None
        deadline = Deadline(timeout)
        try:
            ack = await producer.send(topic, value=value, key=key, headers=list(headers))
            metadata = await _settled(ack)  # a timeout leaves the delivery future to aiokafka
        except asyncio.CancelledError:
            if not deadline.absorb():
                raise
            if ack is None:
                raise PublishUnavailable(f"kafka did not take the record in {timeout}s") from None
            # The record is buffered and may still be written once the broker answers: the
            # platform will redeliver, so it may be published twice (consumers tolerate
            # redeliveries, README "Event ids and redeliveries"). Log the late outcome.
            self._watch_late(ack, topic)
            raise PublishUnavailable(f"kafka did not acknowledge within {timeout}s") from None
        except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
            raise RecordTooLarge(f"kafka refused the record as too large: {exc}") from None
        except KafkaError as exc:
            raise PublishUnavailable(f"kafka refused the record: {exc}") from None
        finally:
            deadline.disarm()
        return Published(metadata.topic, metadata.partition, metadata.offset)

    def _watch_late(self, ack: asyncio.Future[Any], topic: str) -> None:
        self._late.add(ack)

        def done(fut: asyncio.Future[Any]) -> None:
            self._late.discard(fut)
            if fut.cancelled():
                return
            exc = fut.exception()
            if exc is None:
                log.warning("kafka_late_ack", topic=topic, offset=fut.result().offset)
            else:
                log.info("kafka_record_expired", topic=topic, error=str(exc))

        ack.add_done_callback(done)
