"""The commands consumer on the real broker and a real outbox: rows, dead letters, offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from jsonschema import Draft202012Validator

from bridge.config import Config, OutboxConfig
from bridge.kafka.consumer import decode_record
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import Topics
from bridge.outbox.store import AddResult, NewWrite, OutboxStore, OutboxTx, Status, open_store
from consumers import runtime
from consumers.app import AppContext
from consumers.commands import CommandsApp
from tests.ingress.test_kafka import read_topic
from tests.support import make_config

pytestmark = pytest.mark.kafka
DLQ_SCHEMA = Draft202012Validator(
    orjson.loads((Path(__file__).parents[2] / "schemas" / "dlq.v1.json").read_bytes())
)


def command(n: int, key: str, quantity: int = 5, shop: str = "cb-taipei") -> bytes:
    return orjson.dumps(
        {
            "id": f"cmd-{n}",
            "shop": shop,
            "kind": "set_stock",
            "target": {"variant": f"50{n:02d}", "product": "1001"},
            "payload": {"quantity": quantity},
            "idempotency_key": key,
        }
    )


@pytest.fixture
async def setup(
    kafka_topics: Topics, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Config, OutboxStore]]:
    config = make_config(prefix=topic_prefix, bootstrap=kafka_bootstrap)
    config = replace(config, outbox=OutboxConfig(dsn=f"sqlite:///{tmp_path / 'outbox.db'}"))
    store = await open_store(config.outbox.dsn)
    await store.migrate()
    yield config, store
    await store.close()


async def produce(config: Config, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(
                Topics(config.kafka.topic_prefix).commands, value, key=b"k"
            )
    finally:
        await producer.stop()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def run_consumer(config: Config, group: str, done: Callable[[], Awaitable[bool]]) -> None:
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runtime.run(CommandsApp(group), config, stop, started))
    try:
        await until(done)
    finally:
        stop.set()
        await task


async def committed(config: Config, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=config.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets: dict[Any, Any] = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    topic = Topics(config.kafka.topic_prefix).commands
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def test_valid_commands_reach_the_outbox_invalid_ones_the_dlq(
    setup: tuple[Config, OutboxStore], topic_prefix: str
) -> None:
    """Valid commands become outbox rows once per key; invalid ones are dead-lettered with a reason;
    offsets are committed; re-reading everything (lost offsets) changes no outbox row."""
    config, store = setup
    await produce(
        config,
        [
            command(1, "key-1"),
            command(2, "key-2", quantity=9),
            command(1, "key-1"),  # a replay of the first: same idempotency key
            b"{not json",
            command(3, "key-3", shop="no-such-shop"),
        ],
    )

    async def rows_and_letters() -> bool:
        rows = await store.list_rows()
        letters = await read_topic(config, f"{topic_prefix}.dlq", 0, timeout=0.5)
        return len(rows) == 2 and len(letters) == 2

    group = f"{topic_prefix}-commands"
    await run_consumer(config, group, rows_and_letters)

    rows = sorted(await store.list_rows(), key=lambda r: r.id)
    assert [
        ("cb-taipei", "variant:5001", "key-1", 5),
        ("cb-taipei", "variant:5002", "key-2", 9),
    ] == [(r.shop, r.target, r.idempotency_key, r.payload["quantity"]) for r in rows]
    assert {Status.PENDING} == {r.status for r in rows}
    letters = [orjson.loads(r.value) for r in await read_topic(config, f"{topic_prefix}.dlq", 2)]
    assert ["not valid JSON", "unknown shop 'no-such-shop'"] == sorted(
        letter["reason"].split(":")[0] for letter in letters
    )
    for letter in letters:
        assert [] == [e.message for e in DLQ_SCHEMA.iter_errors(letter)]
    records = await read_topic(config, f"{topic_prefix}.dlq", 2)
    assert [(b"commerce.dead_letter.invalid_command", b"/bridge/consumers/commands")] * 2 == [
        (dict(r.headers)["ce_type"], dict(r.headers)["ce_source"]) for r in records
    ]
    assert 5 == sum((await committed(config, group)).values())

    # Offsets lost (a new group reads from the start): the outbox ignores known keys.
    await run_consumer(config, f"{group}-replay", lambda: _committed_all(config, f"{group}-replay"))
    assert [r.id for r in rows] == sorted(r.id for r in await store.list_rows())


async def _committed_all(config: Config, group: str) -> bool:
    return 5 == sum((await committed(config, group)).values())


@dataclass(frozen=True)
class _Conflict(AddResult):
    conflict: bool = True


class _ConflictingTx:
    """An outbox transaction that answers every add: the key is taken by other content."""

    def __init__(self) -> None:
        self.added: list[NewWrite] = []

    async def add(self, write: NewWrite, now: float) -> AddResult:
        self.added.append(write)
        return _Conflict(id=41)

    async def get_state(self, namespace: str, key: str) -> Any | None:
        return None

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        return None


async def test_an_idempotency_conflict_is_dead_lettered_not_dropped() -> None:
    """When the outbox reports the shop's key is already used for other content, the command goes
    to the dlq as idempotency_conflict, naming the row that holds the key."""
    config = make_config()
    app = CommandsApp(clock=lambda: 1_700_000_000.0)
    topics = Topics(config.kafka.topic_prefix)
    await app.start(AppContext(config, topics, cast(OutboxStore, None), cast(Publisher, None)))
    raw = command(1, "key-1")
    record = decode_record(topics.commands, 2, 7, b"cb-taipei:5001", raw, [], 0)

    (letter,) = await app.handle(cast(OutboxTx, _ConflictingTx()), [record])

    document = orjson.loads(letter.value)
    assert [] == [e.message for e in DLQ_SCHEMA.iter_errors(document)]
    assert (topics.dlq, b"cb-taipei:5001") == (letter.topic, letter.key)
    assert ("idempotency_conflict", 41, "key-1", "cb-taipei") == (
        document["kind"],
        document["outbox_id"],
        document["idempotency_key"],
        document["shop"],
    )
    assert orjson.loads(raw) == document["original"]
    assert b"commerce.dead_letter.idempotency_conflict" == dict(letter.headers)["ce_type"]
