"""Helpers for consumer tests: a recording app, records in, offsets and dead letters out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from jsonschema import Draft202012Validator

from bridge.config import Config, OutboxConfig
from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from bridge.outbox.store import OutboxStore, OutboxTx
from consumers.app import AppContext, Outgoing
from consumers.runtime import Runtime
from tests.support import make_config

DLQ_SCHEMA = Draft202012Validator(
    orjson.loads((Path(__file__).parents[2] / "schemas" / "dlq.v1.json").read_bytes())
)
NAMESPACE = "recorder"


def consumer_config(prefix: str, bootstrap: str, tmp_path: Path) -> Config:
    config = make_config(prefix=prefix, bootstrap=bootstrap)
    return replace(config, outbox=OutboxConfig(dsn=f"sqlite:///{tmp_path / 'outbox.db'}"))


class Recorder:
    """A consumer app that stores each record's position in its transaction and remembers what it
    got; ``fails(record)`` makes it raise after storing (so a rollback must undo that)."""

    name = "recorder"

    def __init__(self, group_id: str, fails: Callable[[Record], bool] = lambda _r: False) -> None:
        self.group_id = group_id
        self.fails = fails
        self.got: list[Record] = []
        self.tries: Counter[str] = Counter()
        self.context: AppContext | None = None
        self.stopped = False

    def topics(self, topics: Topics) -> Sequence[str]:
        return [topics.commands]

    async def start(self, ctx: AppContext) -> None:
        self.context = ctx

    async def handle(self, tx: OutboxTx, records: Sequence[Record]) -> Sequence[Outgoing]:
        for record in records:
            self.tries[record.position] += 1
            self.got.append(record)
            await tx.put_state(NAMESPACE, record.position, {"value": record.value})
            if self.fails(record):
                raise RuntimeError(f"cannot handle {record.position}")
        return []

    async def stop(self) -> None:
        self.stopped = True


async def applied(store: OutboxStore, positions: Sequence[str]) -> set[str]:
    """Which of ``positions`` the Recorder's committed transactions stored."""
    async with store.transaction() as tx:
        return {p for p in positions if await tx.get_state(NAMESPACE, p) is not None}


async def produce(
    bootstrap: str, topic: str, values: Sequence[bytes], partition: int | None = None
) -> list[tuple[int, int]]:
    """Write ``values`` in order; their (partition, offset)s."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        placed = []
        for n, value in enumerate(values):
            meta = await producer.send_and_wait(
                topic, value, key=f"k{n}".encode(), partition=partition
            )
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


async def all_committed(config: Config, group: str, topic: str, n: int) -> bool:
    """Whether ``group`` committed ``n`` records of ``topic`` in all (a fresh topic)."""
    return n == sum((await committed(config.kafka.bootstrap_servers, group, topic)).values())


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on ``topic`` by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets: dict[Any, Any] = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def run_until(runtime: Runtime, done: Callable[[], Awaitable[bool]]) -> None:
    """Run ``runtime`` until ``done()`` holds, then stop it (SIGTERM's path) and wait for it."""
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))

    async def finished() -> bool:
        if task.done():
            task.result()  # raises what the runtime raised
            raise AssertionError("the runtime stopped by itself")
        return await done()

    try:
        await until(finished)
    finally:
        stop.set()
        await task


def command(n: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"load-{n}",
            "shop": "cb-taipei",
            "kind": "set_stock",
            "target": {"variant": f"v{n}"},
            "payload": {"quantity": n},
            "idempotency_key": f"load-{n}",
        }
    )


class Stream:
    """A steady stream of commands; remembers where each one landed."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        self.topic = topic
        self.placed: dict[tuple[int, int], str] = {}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            acks = [
                (
                    f"load-{i}",
                    await self.producer.send(self.topic, command(i), key=f"k{i}".encode()),
                )
                for i in range(n, n + 20)
            ]
            n += 20
            for key, ack in acks:
                meta = await ack
                self.placed[(meta.partition, meta.offset)] = key
            # pacing the stream (about 1,000 commands/s), not waiting for anything
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.02)
