"""The relay against the real simulator (HTTP), a real outbox database and the real Kafka broker."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import pytest

from bridge.config import KafkaConfig
from bridge.kafka.publisher import KafkaPublisher
from bridge.kafka.topics import Topics
from bridge.outbox import OutboxStore, Status, open_store
from bridge.platforms import client_for
from bridge.relay.relay import Relay
from tests.relay.support import (
    RELAY,
    Sim,
    add,
    all_in,
    bentoweb,
    cyberbiz,
    eventually,
    make_config,
    read_topic,
    relays,
    rows,
    schema_errors,
    set_stock,
    simulator,
)
from tests.support import RecordingPublisher

pytestmark = pytest.mark.kafka


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[OutboxStore]:
    opened = await open_store(dsn)
    await opened.migrate()
    yield opened
    await opened.close()


async def applied_keys(sim: Sim, shop: str | None = None) -> Counter[str]:
    """How often the simulator applied each idempotency key (a replay does not count)."""
    return Counter(
        r["idempotency_key"]
        for r in await sim.requests(shop)
        if r["method"] == "PUT" and r["applied"]
    )


async def test_every_write_applied_exactly_once_despite_20_percent_failures(
    dsn: str, store: OutboxStore, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """10% fail before and 10% after applying: each write lands once in effect and ends done."""
    shops = [cyberbiz("cb-a"), cyberbiz("cb-b"), bentoweb("bw-a")]
    config = make_config(shops, dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    variants = [f"70{n}" for n in range(6)]
    async with simulator(config, fail_rate=0.1, fail_after_rate=0.1, seed=11) as sim:
        async with relays(config, sim.url) as (handle,):
            ids: list[int] = []
            expected: dict[tuple[str, str], int] = {}
            for round_ in (1, 2):  # round 2 rewrites every target once round 1 is done
                writes = []
                for shop in shops:
                    for n, variant in enumerate(variants):
                        quantity = 100 * round_ + n
                        key = f"{shop.id}-{variant}-r{round_}"
                        writes.append(set_stock(shop, quantity, key, variant=variant))
                        expected[(shop.id, variant)] = quantity
                batch = await add(store, writes)
                ids += batch
                handle.relay.wake()
                await eventually(partial(all_in, store, batch, Status.DONE), what="all done")
        stats = await sim.stats()
        stock = await sim.stock()
        applied = await applied_keys(sim)
    final = await rows(store)
    assert {Status.DONE} == {r.status for r in final}
    assert expected == {(s, v): stock[s]["variants"][v] for s, v in expected}
    assert {r.idempotency_key: 1 for r in final} == dict(applied)
    assert sum(s["requests"] for s in stats.values()) > len(ids)  # the faults did happen
    assert any(r.attempts > 1 for r in final)
    records = await read_topic(kafka_bootstrap, kafka_topics.deliveries)
    assert [] == [e for r in records for e in schema_errors("delivery", r.value)]
    done = Counter(r.value["outbox_id"] for r in records if r.value["status"] == "done")
    assert {i: 1 for i in ids} == dict(done)
    assert {f"{r.value['shop']}:{r.value['target']}" for r in records} == {r.key for r in records}
    assert len(ids) == sum(
        handle.sample("bridge_relay_attempts_total", shop=s.id, outcome="done") for s in shops
    )


async def test_4xx_is_dead_then_retried_from_the_cli_after_the_fix(
    dsn: str, store: OutboxStore, kafka_bootstrap: str, kafka_topics: Topics, tmp_path: Path
) -> None:
    """422 (no sync-group add-on): dead + dlq record; `commerce-bridge outbox retry` sends it once fixed."""
    shop = cyberbiz("cb-nogroups")
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    async with simulator(config, no_sync_groups=["cb-nogroups"]) as sim:
        async with relays(config, sim.url) as (handle,):
            (row_id,) = await add(store, [set_stock(shop, 9, "grp-77-9", group="77")])
            handle.relay.wake()
            await eventually(lambda: all_in(store, [row_id], Status.DEAD), what="dead")
            dead = await store.get(row_id)
            assert dead is not None
            assert "add-on" in (dead.last_error or "")
            state = sim.simulator.state.shops["cb-nogroups"]
            state.spec = replace(state.spec, sync_groups=True)  # the shop buys the add-on
            config_file = tmp_path / "bridge.toml"
            config_file.write_text(f'[outbox]\ndsn = "{dsn}"\n[privacy]\nmode = "redact"\n')
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "outbox", "retry", str(row_id),
                "--config", str(config_file),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await cli.communicate()
            assert 0 == cli.returncode, err.decode()
            assert f"row {row_id} is pending again" in out.decode()
            handle.relay.wake()
            await eventually(lambda: all_in(store, [row_id], Status.DONE), what="done after retry")
        stock = await sim.stock()
    assert 9 == stock["cb-nogroups"]["groups"]["77"]
    assert 1.0 == handle.sample("bridge_relay_dead_letters_total", shop="cb-nogroups")
    letters = await read_topic(kafka_bootstrap, kafka_topics.dlq)
    assert 1 == len(letters)
    letter = letters[0]
    assert [] == schema_errors("dlq", letter.value)
    assert ("delivery_failed", row_id, "grp-77-9", "cb-nogroups:group:77") == (
        letter.value["kind"], letter.value["outbox_id"], letter.value["idempotency_key"], letter.key,
    )  # fmt: skip
    records = await read_topic(kafka_bootstrap, kafka_topics.deliveries)
    assert [("dead", 422), ("done", None)] == [
        (r.value["status"], r.value["http_status"]) for r in records
    ]


async def test_request_too_large_is_dead_without_a_request(
    dsn: str, store: OutboxStore, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """A write over the shop's max_request_bytes is refused locally and lands in the dlq."""
    shop = cyberbiz("cb-tiny", max_request_bytes=10)
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    async with simulator(config) as sim, relays(config, sim.url) as (handle,):
        (row_id,) = await add(store, [set_stock(shop, 5, "big-1", variant="5001")])
        handle.relay.wake()
        await eventually(lambda: all_in(store, [row_id], Status.DEAD), what="dead")
        stats = await sim.stats()
    assert 0 == stats["cb-tiny"]["requests"]
    letters = await read_topic(kafka_bootstrap, kafka_topics.dlq)
    assert [row_id] == [letter.value["outbox_id"] for letter in letters]


async def test_429_retry_after_is_honoured(
    dsn: str, store: OutboxStore, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """After a 429 with Retry-After no request reaches that shop before the deferred time."""
    shop = cyberbiz("cb-busy", rate=10.0)
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    async with simulator(config, rate_429=0.3, seed=3) as sim:
        async with relays(config, sim.url) as (handle,):
            ids = await add(
                store, [set_stock(shop, n, f"busy-{n}", variant=f"80{n}") for n in range(8)]
            )
            handle.relay.wake()
            await eventually(lambda: all_in(store, ids, Status.DONE), what="all done")
        log = await sim.requests("cb-busy")
        stats = await sim.stats()
        applied = await applied_keys(sim)
    retry_after = sim.simulator.faults.settings.retry_after
    rejected = [r["t"] for r in log if r["status"] == 429]
    assert rejected, "the seed should produce at least one 429"
    too_early = [(t, r["t"]) for t in rejected for r in log if t < r["t"] < t + retry_after]
    assert [] == too_early
    assert len(rejected) == stats["cb-busy"]["429"]
    assert len(rejected) == handle.sample("bridge_relay_429_total", shop="cb-busy")
    final = await rows(store)
    assert {r.idempotency_key: 1 for r in final} == dict(applied)
    assert 0 == handle.sample("bridge_relay_attempts_total", shop="cb-busy", outcome="unsent")


async def test_lease_lost_mid_flight_does_not_double_apply(
    dsn: str, store: OutboxStore, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """A relay whose clock runs 9 s late claims a row whose lease (10 s) has in truth 1 s left;
    its slow request outlives that; another relay re-sends with the same key: one effect."""
    shop = cyberbiz("cb-slow")
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)

    def late() -> float:
        return time.time() - (RELAY.lease_seconds - 1.0)

    async with simulator(config, latency_ms=1200) as sim:
        (row_id,) = await add(store, [set_stock(shop, 3, "slow-3", variant="5001")])
        async with relays(config, sim.url, clock=late) as (first,):

            async def arrived() -> bool:
                return (await sim.stats())["cb-slow"]["requests"] >= 1

            await eventually(arrived, what="the first request at the simulator")
            async with relays(config, sim.url) as (second,):
                await eventually(lambda: all_in(store, [row_id], Status.DONE), what="done")
                await eventually(
                    lambda: (
                        1
                        == first.sample(
                            "bridge_relay_attempts_total", shop="cb-slow", outcome="lost"
                        )
                    ),
                    what="the first relay to drop its result",
                )
        log = await sim.requests("cb-slow")
    assert [("slow-3", 200, True), ("slow-3", 200, False)] == [
        (r["idempotency_key"], r["status"], r["applied"]) for r in log
    ]
    assert 1.0 == second.sample("bridge_relay_attempts_total", shop="cb-slow", outcome="done")
    assert 0.0 == first.sample("bridge_relay_attempts_total", shop="cb-slow", outcome="done")
    row = await store.get(row_id)
    assert row is not None
    assert (Status.DONE, 2) == (row.status, row.attempts)
    records = await read_topic(kafka_bootstrap, kafka_topics.deliveries)
    assert [(row_id, "done", 2)] == [
        (r.value["outbox_id"], r.value["status"], r.value["attempt"]) for r in records
    ]


async def test_sending_goes_on_when_kafka_is_unavailable(dsn: str, store: OutboxStore) -> None:
    """No broker: writes are still delivered; the lost delivery records are counted."""
    shop = cyberbiz("cb-a")
    config = make_config([shop], dsn=dsn)
    publisher = KafkaPublisher(KafkaConfig(bootstrap_servers="127.0.0.1:9"))  # never connects
    async with simulator(config) as sim, relays(config, sim.url, publisher=publisher) as (h,):
        ids = await add(store, [set_stock(shop, n, f"nk-{n}", variant=f"9{n}") for n in range(3)])
        h.relay.wake()
        await eventually(lambda: all_in(store, ids, Status.DONE), what="all done")
        await eventually(lambda: 3 == h.relay.reporter.failed, what="3 dropped records")
    assert 3.0 == h.sample(
        "bridge_relay_publish_failures_total", topic="commerce.deliveries", reason="unavailable"
    )


async def test_replicas_take_the_due_shops_chunk_by_chunk_in_their_own_order(
    dsn: str, store: OutboxStore
) -> None:
    """Lanes are taken 200 shops per transaction. Relays polling the same 450 due shops take the
    chunks each in its own order: in one shared order the second would wait on the first's
    uncommitted claim of the same lanes, chunk after chunk. Every due shop is still asked for
    exactly once per poll."""
    shops = [cyberbiz(f"cb-{n:03}") for n in range(450)]
    config = make_config(shops, dsn=dsn)
    await add(store, [set_stock(s, 1, f"chunk-{s.id}", variant="71") for s in shops])
    firsts: set[str] = set()
    async with httpx.AsyncClient() as http:
        clients = {s.id: client_for(s, http) for s in shops}
        for seed in range(6):
            relay = Relay(
                config, store, clients, RecordingPublisher(), owner=f"r{seed}",
                rng=random.Random(seed),
            )  # fmt: skip
            chunks: list[list[str]] = []

            async def record(chunk: list[str], _now: float, into: list[list[str]] = chunks) -> None:
                into.append(chunk)

            relay._start_lanes = record  # type: ignore[method-assign,assignment]
            await relay._poll()
            assert [200, 200, 50] == sorted((len(c) for c in chunks), reverse=True)
            assert sorted(s.id for s in shops) == sorted(x for c in chunks for x in c)
            firsts.add(chunks[0][0])
    assert len(firsts) > 1, "every relay started on the same chunk"
