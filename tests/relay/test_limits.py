"""The per-shop rate limit as the simulator measures it: one relay, and three sharing one database."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from bridge.kafka.topics import Topics
from bridge.outbox import Status, open_store
from bridge.relay import RelayOptions
from tests.relay.support import (
    add,
    all_in,
    cyberbiz,
    eventually,
    make_config,
    relays,
    rows,
    set_stock,
    simulator,
)

pytestmark = pytest.mark.kafka

LIMIT = 5.0


async def test_one_relay_stays_at_the_limit(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """15 queued writes at 5/s: never more than 5 in any 1 s, no 429, close to the limit."""
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    shop = cyberbiz("cb-limited", rate=LIMIT)
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    store = await open_store(dsn)
    try:
        await store.migrate()
        ids = await add(
            store, [set_stock(shop, n, f"lim-{n}", variant=f"6{n:02}") for n in range(15)]
        )
        async with simulator(config) as sim, relays(config, sim.url):
            await eventually(partial(all_in, store, ids, Status.DONE), what="all done")
            stats = (await sim.stats())["cb-limited"]
            log = await sim.requests("cb-limited")
    finally:
        await store.close()
    assert (15, 0) == (stats["requests"], stats["429"])
    assert stats["max_in_any_1s"] <= LIMIT
    span = log[-1]["t"] - log[0]["t"]
    assert 14 / LIMIT <= span < 14 / LIMIT * 1.25  # at the limit, not far below it


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def shared_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty outbox database that several relays open, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    dsn: str = request.getfixturevalue("postgres_schema_dsn")
    return dsn


async def test_three_relays_share_one_shops_limit(
    shared_dsn: str, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """Three relays (own store objects, one database) hand one shop around: still <= 5/s."""
    dsn = shared_dsn
    shop = cyberbiz("cb-shared", rate=LIMIT)
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    store = await open_store(dsn)
    try:
        await store.migrate()
        # Lanes change hands every second, so each relay starts where another stopped: only
        # the shared token bucket in the database keeps the spacing across the handovers.
        options = RelayOptions(lane_turn_seconds=1.0, batch_seconds=1.0)
        async with simulator(config) as sim, relays(config, sim.url, 3, options=options) as hs:
            ids = await add(
                store, [set_stock(shop, n, f"three-{n}", variant=f"4{n:02}") for n in range(20)]
            )
            for handle in hs:
                handle.relay.wake()
            await eventually(partial(all_in, store, ids, Status.DONE), what="all done")
            stats = (await sim.stats())["cb-shared"]
            log = await sim.requests("cb-shared")
        final = await rows(store)
    finally:
        await store.close()
    assert (20, 0) == (stats["requests"], stats["429"])
    assert stats["max_in_any_1s"] <= LIMIT
    assert {r.idempotency_key: 1 for r in final} == dict(
        Counter(r["idempotency_key"] for r in log if r["applied"])
    )
    done = [h.sample("bridge_relay_attempts_total", shop="cb-shared", outcome="done") for h in hs]
    assert 20 == sum(done)
    assert sum(1 for n in done if n) >= 2, f"no handover happened: {done}"
