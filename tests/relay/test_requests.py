"""Each request to a platform: one total deadline inside its row's lease, and a rate-limit slot for
every request the shop sees (BentoWeb token fetches too). Real simulator, real SQLite outbox."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from bridge.outbox import OutboxStore, Status, open_store
from tests.relay.support import (
    RELAY,
    Claim,
    add,
    all_in,
    bentoweb,
    cyberbiz,
    eventually,
    make_config,
    most_in_any_window,
    recording,
    relays,
    rows,
    set_stock,
    simulator,
)
from tests.support import RecordingPublisher

RATE = 5.0


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[OutboxStore]:
    opened = await open_store(dsn)
    await opened.migrate()
    yield opened
    await opened.close()


async def test_a_request_never_outlives_its_rows_lease(dsn: str, store: OutboxStore) -> None:
    """Answers take 2.5 s, the deadline is 2 s, the lease 3 s at 5/s: each request starts early
    enough in its lease to end within it (the lease is lengthened to fit); timed-out rows are
    retried, applied once, never lost."""
    deadline = 2.0
    shop = cyberbiz("cb-laggy", rate=RATE)
    config = make_config(
        [shop], dsn=dsn, relay=replace(RELAY, lease_seconds=3.0, request_timeout=deadline)
    )
    ids = await add(store, [set_stock(shop, n, f"lag-{n}", variant=f"7{n:02}") for n in range(10)])
    claims: list[Claim] = []
    async with (
        simulator(config, latency_ms=2500) as sim,
        relays(config, sim.url, publisher=RecordingPublisher(), wrap=recording(claims)) as (h,),
    ):
        h.relay.wake()

        async def timed_out() -> bool:  # each write that waited for its answer past 2 s
            errors = [r.last_error or "" for r in await rows(store)]
            return sum("request deadline" in e for e in errors) >= 5

        await eventually(timed_out, what="5 rows timed out")
        await sim.faults(latency_ms=0)
        await eventually(partial(all_in, store, ids, Status.DONE), what="all done")
        log = [r for r in await sim.requests("cb-laggy") if r["method"] == "PUT"]
    final = {r.idempotency_key: r for r in await rows(store)}
    late = []
    for request in log:
        row = final[request["idempotency_key"]].id
        window = [c for c in claims if c.row == row and c.at <= request["t"]]
        claim = max(window, key=lambda c: c.at)
        if request["t"] + deadline > claim.lease_until:
            late.append((row, claim.attempt, round(claim.lease_until - request["t"], 3)))
    assert [] == late, "requests that could outlive their lease (row, attempt, lease left)"
    assert 0 == h.sample("bridge_relay_attempts_total", shop="cb-laggy", outcome="lost")
    applied = Counter(r["idempotency_key"] for r in log if r["applied"])
    assert {key: 1 for key in final} == dict(applied)
    assert sum(r.attempts >= 2 for r in final.values()) >= 5


async def test_bentoweb_token_fetches_take_a_slot(dsn: str, store: OutboxStore) -> None:
    """Tokens living 1 s (a fetch every 0.9 s) at 5/s: token fetches and writes together never
    exceed 5 in any 1 s at the simulator."""
    shop = bentoweb("bw-tokens", rate=RATE)
    config = make_config([shop], dsn=dsn)
    ids = await add(store, [set_stock(shop, n, f"tok-{n}", variant=f"8{n:02}") for n in range(25)])
    async with (
        simulator(config, token_ttl=1.0) as sim,
        relays(config, sim.url, publisher=RecordingPublisher()) as (handle,),
    ):
        handle.relay.wake()
        await eventually(partial(all_in, store, ids, Status.DONE), what="all done", timeout=60)
        log = await sim.requests("bw-tokens")
    tokens = [r for r in log if r["method"] == "POST"]
    writes = [r for r in log if r["method"] == "PUT"]
    assert len(tokens) >= 4, "the tokens should have expired during the run"
    assert {200} == {r["status"] for r in log}
    assert 25 == len(writes)
    assert most_in_any_window(r["t"] for r in log) <= RATE
