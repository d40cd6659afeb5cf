"""429 deferrals and delivery-record ids, against the real simulator and a real SQLite outbox.

Kafka is replaced by a recording publisher: these tests count what would be published.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from bridge.outbox import OutboxStore, Status, open_store
from tests.relay.support import (
    RELAY,
    Claim,
    add,
    all_in,
    cyberbiz,
    eventually,
    make_config,
    recording,
    relays,
    rows,
    set_stock,
    simulator,
)
from tests.support import RecordingPublisher

RATE = 5.0
QUEUE = 300


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[OutboxStore]:
    opened = await open_store(f"sqlite:///{db}")
    await opened.migrate()
    yield opened
    await opened.close()


def bucket(db: Path, shop: str) -> tuple[float, float]:
    """The shop's shared token bucket: (tat, not_before)."""
    with sqlite3.connect(db) as conn:
        tat, not_before = conn.execute(
            "SELECT tat, not_before FROM lanes WHERE shop = ?", (shop,)
        ).fetchone()
    return float(tat), float(not_before)


def deliveries(publisher: RecordingPublisher) -> list[dict[str, object]]:
    return [orjson.loads(value) for topic, _, value, _ in publisher.records if "deliver" in topic]


async def test_a_long_retry_after_ends_the_lane_and_books_nothing_ahead(
    db: Path, store: OutboxStore
) -> None:
    """429 + Retry-After 60 on 300 queued rows: one claim, one request, one delivery record (the
    attempt), the rest put back silently, and the bucket not pushed past the batch's own slots."""
    shop = cyberbiz("cb-deferred", rate=RATE)
    config = make_config([shop], dsn=f"sqlite:///{db}")
    ids = await add(
        store, [set_stock(shop, n, f"def-{n}", variant=f"5{n:03}") for n in range(QUEUE)]
    )
    publisher = RecordingPublisher()
    claims: list[Claim] = []
    async with (
        simulator(config, rate_429=1.0, retry_after=60) as sim,
        relays(config, sim.url, publisher=publisher, wrap=recording(claims)) as (handle,),
    ):
        started = time.time()
        handle.relay.wake()
        await eventually(lambda: len(publisher.records) >= 1, what="the 429's delivery record")
        relay = handle.relay
        settled = time.time() + 2.0  # 40 polls: a relay looping on the shop would claim again
        await eventually(lambda: (relay.last_poll or 0.0) > settled, what="2 s of polls")
        stats = (await sim.stats())["cb-deferred"]
        tat, not_before = bucket(db, "cb-deferred")
    batch = relay.batch_size(shop)
    assert (1, 1) == (stats["requests"], stats["429"])
    assert batch == len(claims), "one claim of one batch, then nothing until the deferral ends"
    assert batch - 1 == handle.sample(
        "bridge_relay_attempts_total", shop="cb-deferred", outcome="unsent"
    )
    assert [("retry", 429)] == [(d["status"], d["http_status"]) for d in deliveries(publisher)]
    assert started + 60.0 <= not_before < time.time() + 60.0
    assert tat <= started + batch / RATE + 1.0, "the bucket was pushed ahead of the batch"
    final = await rows(store)
    assert {Status.PENDING} == {r.status for r in final}
    assert QUEUE == len(ids) == len(final)
    put_back = [r for r in final if r.last_error and r.last_error.startswith("not sent:")]
    assert batch - 1 == len(put_back)
    assert all(r.next_attempt_at >= not_before - 0.01 for r in put_back)


async def test_retry_after_is_capped_at_an_hour(db: Path, store: OutboxStore) -> None:
    """Retry-After: 86400 pauses the shop and the row for relay.max_retry_after (1 h), no more."""
    shop = cyberbiz("cb-next-day")
    config = make_config([shop], dsn=f"sqlite:///{db}")
    (row_id,) = await add(store, [set_stock(shop, 1, "day-1", variant="5001")])
    async with (
        simulator(config, rate_429=1.0, retry_after=86_400) as sim,
        relays(config, sim.url, publisher=RecordingPublisher()) as (handle,),
    ):
        handle.relay.wake()
        await eventually(
            lambda: 1 == handle.sample("bridge_relay_429_total", shop="cb-next-day"), what="429"
        )
        await eventually(lambda: all_in(store, [row_id], Status.PENDING), what="back to pending")
        answered = time.time()
    row = await store.get(row_id)
    assert row is not None
    _, not_before = bucket(db, "cb-next-day")
    assert answered + 3600.0 - 5.0 < not_before <= answered + 3600.0
    assert answered + 3600.0 - 5.0 < row.next_attempt_at <= answered + 3600.0


async def outbox_retry(db: Path, tmp_path: Path, row_id: int) -> None:
    """`commerce-bridge outbox retry ID`, the operator's way back for a dead row."""
    config_file = tmp_path / "bridge.toml"
    config_file.write_text(f'[outbox]\ndsn = "sqlite:///{db}"\n[privacy]\nmode = "redact"\n')
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "outbox", "retry", str(row_id),
        "--config", str(config_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await cli.communicate()
    assert 0 == cli.returncode, err.decode()
    assert f"row {row_id} is pending again" in out.decode()


async def test_every_attempt_gets_its_own_ce_id_across_an_operator_retry(
    db: Path, store: OutboxStore, tmp_path: Path
) -> None:
    """5xx twice (dead at max_attempts 2), `outbox retry`, the same again, `outbox retry`, 200:
    five delivery records, five ce_ids, although the first two attempts failed alike twice."""
    shop = cyberbiz("cb-flaky")
    config = make_config(
        [shop], dsn=f"sqlite:///{db}", relay=replace(RELAY, max_attempts=2, backoff_cap=0.1)
    )
    (row_id,) = await add(store, [set_stock(shop, 4, "flaky-4", variant="5001")])
    publisher = RecordingPublisher()
    async with (
        simulator(config, fail_rate=1.0) as sim,
        relays(config, sim.url, publisher=publisher) as (handle,),
    ):
        handle.relay.wake()
        await eventually(lambda: 2 == len(deliveries(publisher)), what="dead")
        await outbox_retry(db, tmp_path, row_id)
        handle.relay.wake()
        await eventually(lambda: 4 == len(deliveries(publisher)), what="dead again")
        await sim.faults(fail_rate=0.0)
        await outbox_retry(db, tmp_path, row_id)
        handle.relay.wake()
        await eventually(lambda: 5 == len(deliveries(publisher)), what="the done record")
    records = [(topic, dict(headers)) for topic, _, _, headers in publisher.records]
    delivery_ids = [h["ce_id"] for topic, h in records if "deliver" in topic]
    assert [("retry", 1), ("dead", 2), ("retry", 1), ("dead", 2), ("done", 1)] == [
        (d["status"], d["attempt"]) for d in deliveries(publisher)
    ]
    assert 5 == len(set(delivery_ids)), delivery_ids
    assert all(i.startswith(f"delivery-{row_id}-".encode()) for i in delivery_ids)
    letters = [h for topic, h in records if topic.endswith("dlq")]
    assert 2 == len({h["ce_id"] for h in letters})
    assert 2 * [(b"1.0", b"commerce.dead_letter.delivery_failed")] == [
        (h["ce_specversion"], h["ce_type"]) for h in letters
    ]
