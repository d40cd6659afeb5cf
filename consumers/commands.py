"""``commerce-bridge consume commands``: group ``bridge-commands`` moves commands into the outbox.

Valid commands become outbox rows (one DB transaction per partition batch, offset committed after
it); invalid ones go to ``commerce.dlq`` with the reason. Replays are harmless: the outbox ignores
a known idempotency key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition

from bridge.commands import InvalidCommand, parse_command, to_write
from bridge.config import Config
from bridge.kafka.publisher import KafkaPublisher, Publisher
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.outbox.store import OutboxStore, open_store
from bridge.times import rfc3339
from consumers.runtime import ConsumerMetrics, Records, consume

GROUP = "bridge-commands"
log = get_logger(__name__)


def dead_letter(reason: str, record: Any, now: float) -> dict[str, Any]:
    """A ``schemas/dlq.v1.json`` document (kind ``invalid_command``) for a command refused."""
    try:
        original: Any = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        original = (record.value or b"").decode("utf-8", "replace")
    return {
        "kind": "invalid_command",
        "reason": reason,
        "at": rfc3339(datetime.fromtimestamp(now, UTC), "milliseconds"),
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "shop": original.get("shop") if isinstance(original, dict) else None,
        "outbox_id": None,
        "idempotency_key": original.get("idempotency_key") if isinstance(original, dict) else None,
        "original": original,
    }


class CommandsConsumer:
    def __init__(
        self,
        config: Config,
        store: OutboxStore,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.topics = Topics(config.kafka.topic_prefix)

    async def handle(self, tp: TopicPartition, records: Records) -> None:
        now = self.clock()
        rejected: list[tuple[Any, str]] = []
        async with self.store.transaction() as tx:
            for record in records:
                try:
                    command = parse_command(record.value or b"", self.config.shops.keys())
                except InvalidCommand as exc:
                    rejected.append((record, exc.reason))
                    continue
                result = await tx.add(to_write(command), now)
                log.info(
                    "command_queued",
                    shop=command.shop,
                    command_id=command.id,
                    outbox_id=result.id,
                    duplicate=result.duplicate,
                    superseded=result.superseded,
                    offset=record.offset,
                )
        for record, reason in rejected:
            log.warning(
                "command_rejected", reason=reason, partition=tp.partition, offset=record.offset
            )
            await self.publisher.publish(
                self.topics.dlq,
                record.key or b"",
                orjson.dumps(dead_letter(reason, record, now)),
                [("content-type", b"application/json")],
                timeout=10.0,
            )


async def run(
    config: Config,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    *,
    group: str = GROUP,
    metrics: ConsumerMetrics | None = None,
) -> None:
    store = await open_store(config.outbox.dsn)
    publisher = KafkaPublisher(config.kafka, client_id=GROUP)
    try:
        await store.migrate()
        if not await publisher.start_until(stop):
            return  # stopped before Kafka was reachable
        app = CommandsConsumer(config, store, publisher)
        await consume(
            config.kafka,
            group,
            [app.topics.commands],
            app.handle,
            stop,
            started=started,
            metrics=metrics,
        )
    finally:
        await publisher.stop()
        await store.close()
