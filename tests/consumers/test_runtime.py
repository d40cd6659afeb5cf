"""The consumer runtime on the real broker and a real outbox: what apps get, when offsets move,
what happens to a record that keeps failing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from bridge.config import Config
from bridge.kafka.records import CloudEvent, Record
from bridge.kafka.topics import Topics
from bridge.outbox.store import AddResult, NewWrite, OutboxStore, OutboxTx, open_store
from consumers.metrics import ConsumerMetrics
from consumers.runtime import Runtime, RuntimeOptions
from tests.consumers.support import (
    DLQ_SCHEMA,
    Recorder,
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


async def test_apps_get_decoded_bridge_records(config: Config, store: OutboxStore) -> None:
    """The app gets bridge Records: JSON decoded, CloudEvents headers as attributes, the key as
    text, position and raw bytes; a value that is not JSON arrives with its decode error."""
    topics = Topics(config.kafka.topic_prefix)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt-1"),
        ("ce_source", b"/cyberbiz/cb-taipei"),
        ("ce_type", b"commerce.variant.updated"),
        ("ce_subject", b"5001"),
        ("ce_time", b"2026-01-02T03:04:05.000Z"),
        ("content-type", b"application/json"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.commands, b'{"a": 1}', key=b"cb-taipei:5001", partition=1, headers=headers
        )
        await producer.send_and_wait(topics.commands, b"{nope", key=None, partition=1)
    finally:
        await producer.stop()
    app = Recorder(f"{topics.prefix}-g")
    runtime = Runtime(app, config, options=FAST)
    await run_until(runtime, lambda: _count(app.got, 2))

    first, second = app.got
    assert all(isinstance(r, Record) for r in app.got)
    assert (topics.commands, 1, 0, "cb-taipei:5001") == (
        first.topic,
        first.partition,
        first.offset,
        first.key,
    )
    assert (
        CloudEvent(
            "evt-1",
            "/cyberbiz/cb-taipei",
            "commerce.variant.updated",
            "2026-01-02T03:04:05.000Z",
            "1.0",
            "5001",
        )
        == first.ce
    )
    assert ({"a": 1}, b'{"a": 1}', None) == (first.value, first.raw, first.decode_error)
    assert b"application/json" == first.headers["content-type"]
    assert (None, b"{nope", None) == (second.key, second.raw, second.value)
    assert "not valid JSON" == (second.decode_error or "").split(":")[0]
    assert CloudEvent(None, None, None, None) == second.ce
    assert app.context is not None
    assert store.__class__ is app.context.store.__class__
    assert app.stopped


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def test_a_failing_partition_loses_no_record_of_the_others(
    config: Config, store: OutboxStore
) -> None:
    """When one partition's batch fails, it is retried, and the batches of the other partitions
    fetched in the same poll are still handled: every record is applied and committed."""
    topic = Topics(config.kafka.topic_prefix).commands
    placed = [
        p
        for n in range(3)
        for p in await produce(config.kafka.bootstrap_servers, topic, [b"{}"] * 20, n)
    ]
    once: set[int] = set()

    def fails(record: Record) -> bool:
        if record.partition == 0 and not once:
            once.add(0)
            return True
        return False

    group = f"{config.kafka.topic_prefix}-g"
    metrics = ConsumerMetrics.create(CollectorRegistry())
    runtime = Runtime(Recorder(group, fails), config, options=FAST, metrics=metrics)
    positions = [f"{topic}:{p}:{o}" for p, o in placed]
    await run_until(runtime, lambda: all_committed(config, group, topic, 60))

    assert set(positions) == await applied(store, positions)
    assert {0: 20, 1: 20, 2: 20} == await committed(config.kafka.bootstrap_servers, group, topic)
    assert 1.0 == metrics.failures.labels(group, topic)._value.get()
    assert 60.0 == metrics.records.labels(group, topic)._value.get()


class _CommitFailsOnce:
    """A store whose first transaction does not commit (the COMMIT fails, nothing is written), and
    the consumer process dies right then (``crash`` is its stop event)."""

    def __init__(self, store: OutboxStore, crash: asyncio.Event) -> None:
        self.store = store
        self.crash = crash
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[OutboxTx]:
        if self.failed:
            async with self.store.transaction() as tx:
                yield tx
            return
        self.failed = True
        with contextlib.suppress(_RolledBack):
            async with self.store.transaction() as tx:
                yield tx
                raise _RolledBack
        self.crash.set()
        raise ConnectionError("the database connection was lost during COMMIT")


class _RolledBack(Exception):
    pass


async def test_the_offset_is_committed_only_after_the_database_commit(
    config: Config, store: OutboxStore
) -> None:
    """The DB commit of a batch fails and the consumer dies at that moment: its offsets were not
    committed, so the next run reads the records again and applies every one."""
    topic = Topics(config.kafka.topic_prefix).commands
    placed = await produce(config.kafka.bootstrap_servers, topic, [b"{}"] * 5, partition=2)
    positions = [f"{topic}:{p}:{o}" for p, o in placed]
    group = f"{config.kafka.topic_prefix}-g"
    crash = asyncio.Event()
    failing: list[_CommitFailsOnce] = []

    async def open_failing(dsn: str) -> OutboxStore:
        failing.append(_CommitFailsOnce(await open_store(dsn), crash))
        return cast(OutboxStore, failing[0])

    first = Runtime(Recorder(group), config, options=FAST, store_opener=open_failing)
    await asyncio.wait_for(first.run(crash), 60)

    assert [True] == [f.failed for f in failing]
    assert set() == await applied(store, positions)
    assert {} == await committed(config.kafka.bootstrap_servers, group, topic)

    second = Recorder(group)
    await run_until(Runtime(second, config, options=FAST), lambda: _count(second.got, 5))
    await until(lambda: all_committed(config, group, topic, 5))
    assert set(positions) == await applied(store, positions)


class _PlainTx:
    """An outbox transaction without ``savepoint``: the runtime's one-transaction-per-record path."""

    def __init__(self, tx: OutboxTx) -> None:
        self.tx = tx

    async def add(self, write: NewWrite, now: float) -> AddResult:
        return await self.tx.add(write, now)

    async def get_state(self, namespace: str, key: str) -> Any | None:
        return await self.tx.get_state(namespace, key)

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        await self.tx.put_state(namespace, key, value)


class _NoSavepoints:
    def __init__(self, store: OutboxStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[OutboxTx]:
        async with self.store.transaction() as tx:
            yield cast(OutboxTx, _PlainTx(tx))  # deliberately without savepoint()


async def _open_plain(dsn: str) -> OutboxStore:
    return cast(OutboxStore, _NoSavepoints(await open_store(dsn)))


@pytest.mark.parametrize("opener", [open_store, _open_plain], ids=["store", "no-savepoints"])
async def test_a_poison_record_is_dead_lettered_and_the_partition_moves_on(
    config: Config,
    store: OutboxStore,
    outbox_dsn: str,
    opener: Callable[[str], Awaitable[OutboxStore]],
) -> None:
    """A record the app fails on every time: its batch is tried ``poison_after`` times, then record
    by record; that record alone is dead-lettered (poison_record, schema-valid, CloudEvents
    headers), its writes rolled back, and the records around it are applied and committed."""
    topics = Topics(config.kafka.topic_prefix)
    # On PostgreSQL the poison is a database error too: a NUL cannot be stored in jsonb.
    poison = b'{"shop": "cb-taipei", "poison": "\\u0000"}'
    values = [b'{"n": 0}', poison, b'{"n": 2}', b'{"n": 3}']
    placed = await produce(config.kafka.bootstrap_servers, topics.commands, values, partition=0)
    positions = [f"{topics.commands}:{p}:{o}" for p, o in placed]
    group = f"{topics.prefix}-g"
    app = Recorder(group, lambda r: isinstance(r.value, dict) and "poison" in r.value)
    metrics = ConsumerMetrics.create(CollectorRegistry())
    runtime = Runtime(app, config, options=FAST, metrics=metrics, store_opener=opener)
    await run_until(runtime, lambda: all_committed(config, group, topics.commands, 4))

    assert {positions[0], positions[2], positions[3]} == await applied(store, positions)
    assert 4 == app.tries[positions[1]]  # 3 batches, then once alone
    (letter,) = await read_topic(config, topics.dlq, 1)
    document = orjson.loads(letter.value)
    assert [] == [e.message for e in DLQ_SCHEMA.iter_errors(document)]
    assert (
        "poison_record",
        "cb-taipei",
        {"topic": topics.commands, "partition": 0, "offset": 1},
    ) == (
        document["kind"],
        document["shop"],
        document["source"],
    )
    reason = (
        f"RuntimeError: cannot handle {positions[1]}"
        if outbox_dsn.startswith("sqlite:")
        else "UntranslatableCharacterError: unsupported Unicode escape sequence\n"
        "DETAIL:  \\u0000 cannot be converted to text."
    )
    assert reason == document["reason"]
    assert {"shop": "cb-taipei", "poison": "\x00"} == document["original"]
    headers = dict(letter.headers)
    assert (b"commerce.dead_letter.poison_record", f"poison_record:{positions[1]}".encode()) == (
        headers["ce_type"],
        headers["ce_id"],
    )
    assert b"k1" == letter.key
    assert 1.0 == metrics.poison.labels(group, topics.commands)._value.get()
    assert 3.0 == metrics.failures.labels(group, topics.commands)._value.get()
