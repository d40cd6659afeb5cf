"""The consumer runtime when the database goes away, and when partitions move between members."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from bridge.config import Config
from bridge.kafka.topics import Topics
from bridge.outbox.store import OutboxStore, OutboxTx, open_store
from consumers.metrics import ConsumerMetrics
from consumers.runtime import Runtime, RuntimeOptions
from tests.consumers.support import (
    Recorder,
    Stream,
    all_committed,
    applied,
    committed,
    produce,
    run_until,
    until,
)
from tests.ingress.test_kafka import read_topic

pytestmark = pytest.mark.kafka
FAST = RuntimeOptions(retry_delay=0.05, poison_after=3)


class _Outage:
    """A store that cannot open a transaction while ``down`` is set, as a lost database would."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store
        self.down = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[OutboxTx]:
        if self.down:
            raise ConnectionRefusedError("the outbox database is unreachable")
        async with self.store.transaction() as tx:
            yield tx


async def test_a_database_outage_dead_letters_nothing_and_loses_nothing(
    config: Config, store: OutboxStore
) -> None:
    """While the outbox database is down every batch fails, also record by record: no offset moves
    and nothing is dead-lettered as poison; once it is back every record is applied."""
    topics = Topics(config.kafka.topic_prefix)
    placed = await produce(config.kafka.bootstrap_servers, topics.commands, [b"{}"] * 6, 1)
    positions = [f"{topics.commands}:{p}:{o}" for p, o in placed]
    group = f"{topics.prefix}-g"
    outages: list[_Outage] = []

    async def open_down(dsn: str) -> OutboxStore:
        outages.append(_Outage(await open_store(dsn)))
        return cast(OutboxStore, outages[-1])

    metrics = ConsumerMetrics.create(CollectorRegistry())
    runtime = Runtime(
        Recorder(group), config, options=FAST, metrics=metrics, store_opener=open_down
    )

    async def failed_record_by_record_too() -> bool:
        # poison_after=3 batch failures, then two more tries record by record
        failures: float = metrics.failures.labels(group, topics.commands)._value.get()
        return failures >= 5

    async def back_and_applied() -> bool:
        if outages and outages[0].down and await failed_record_by_record_too():
            assert {} == await committed(config.kafka.bootstrap_servers, group, topics.commands)
            outages[0].down = False
        return await all_committed(config, group, topics.commands, 6)

    await run_until(runtime, back_and_applied)
    assert set(positions) == await applied(store, positions)
    assert [] == await read_topic(config, topics.dlq, 0, timeout=1.0)
    assert 0.0 == metrics.poison.labels(group, topics.commands)._value.get()


async def test_partitions_moving_between_members_lose_no_record(
    config: Config, store: OutboxStore
) -> None:
    """A second member joins while records flow and the first one leaves: every record of every
    partition is applied and committed exactly where the other member stopped."""
    topics = Topics(config.kafka.topic_prefix)
    group = f"{topics.prefix}-g"
    bootstrap = config.kafka.bootstrap_servers
    first, second = Recorder(group), Recorder(group)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    options = RuntimeOptions(retry_delay=0.05, max_records=10)
    stream = Stream(bootstrap, topics.commands)
    await stream.producer.start()
    feeding = asyncio.create_task(stream.run())
    one = asyncio.create_task(Runtime(first, config, options=options).run(stop_first))
    two: asyncio.Task[None] | None = None
    try:
        await until(lambda: _got(first, 1))
        two = asyncio.create_task(Runtime(second, config, options=options).run(stop_second))
        await until(lambda: _got(second, 1))
        stop_first.set()
        await one
        handed_over = len(second.got)
        await until(lambda: _partitions_after(second, handed_over, {0, 1, 2}))
        stream.stop.set()
        await feeding
        await until(lambda: all_committed(config, group, topics.commands, len(stream.placed)))
    finally:
        stream.stop.set()
        await feeding
        await stream.producer.stop()
        stop_first.set()
        stop_second.set()
        await one
        if two is not None:
            await two
    positions = [f"{topics.commands}:{p}:{o}" for p, o in stream.placed]
    assert set(positions) == await applied(store, positions)
    assert set(positions) == {r.position for r in first.got + second.got}
    assert len(positions) == sum((await committed(bootstrap, group, topics.commands)).values())


async def _got(app: Recorder, n: int) -> bool:
    return len(app.got) >= n


async def _partitions_after(app: Recorder, start: int, partitions: set[int]) -> bool:
    """Whether ``app`` got records of every one of ``partitions`` after its first ``start``."""
    return partitions <= {r.partition for r in app.got[start:]}
