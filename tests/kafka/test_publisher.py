"""KafkaPublisher.publish's deadline: a late ack is a PublishUnavailable that leaves aiokafka's
delivery future alone; other cancellations pass through; the caller's task stays usable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata

from bridge.config import KafkaConfig
from bridge.errors import PublishUnavailable
from bridge.kafka.publisher import KafkaPublisher, Published


class StubProducer:
    """Takes records at once; acknowledges them only when told to."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[Any]] = []
        self.taken = asyncio.Event()

    async def send(self, topic: str, **_record: Any) -> asyncio.Future[Any]:
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        self.taken.set()
        return ack


def publisher_with(producer: StubProducer) -> KafkaPublisher:
    publisher = KafkaPublisher(KafkaConfig())
    publisher._producer = producer  # the seam under test
    return publisher


async def test_an_ack_within_the_deadline_is_the_published_position() -> None:
    """The broker's answer (topic, partition, offset) comes back as Published."""
    producer = StubProducer()
    publishing = asyncio.create_task(publisher_with(producer).publish("t", b"k", b"v", [], 5.0))
    await asyncio.wait_for(producer.taken.wait(), 5)
    producer.acks[0].set_result(RecordMetadata("t", 2, None, 41, -1, None, -1))
    assert Published("t", 2, 41) == await asyncio.wait_for(publishing, 5)


async def test_no_ack_in_time_is_unavailable_and_the_delivery_future_is_left_alone() -> None:
    """Past the deadline publish raises PublishUnavailable; aiokafka's future is not cancelled
    and the calling task is not left cancelled (its next await works)."""
    producer = StubProducer()
    with pytest.raises(PublishUnavailable, match=r"did not acknowledge within 0\.05s"):
        await publisher_with(producer).publish("t", b"k", b"v", [], 0.05)
    current = asyncio.current_task()
    assert (False, 0) == (producer.acks[0].cancelled(), current.cancelling() if current else -1)
    await asyncio.sleep(0)  # would raise CancelledError if a cancellation were left pending


async def test_a_cancellation_from_outside_is_not_turned_into_unavailable() -> None:
    """Shutdown cancelling the request propagates as CancelledError, not as a 503."""
    producer = StubProducer()
    publishing = asyncio.create_task(publisher_with(producer).publish("t", b"k", b"v", [], 5.0))
    await asyncio.wait_for(producer.taken.wait(), 5)
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    assert False is producer.acks[0].cancelled()
