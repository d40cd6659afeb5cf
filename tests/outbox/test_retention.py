"""The retention purge (bridge.outbox.retention), on both stores: old finished rows go, in
batches; live rows and recent finished rows stay; the relay's loop purges at start."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bridge.outbox import OutboxStore, Status
from bridge.outbox.retention import purge_expired, purge_interval, purge_loop, purging
from tests.outbox.helpers import T0, add, write

DAY = 86_400.0
RETENTION = 7 * DAY


async def finish(store: OutboxStore, count: int, now: float, prefix: str) -> None:
    """``count`` rows of their own targets, claimed and marked done at ``now``."""
    await add(
        store, *(write(f"variant:{prefix}{n}", f"{prefix}{n}") for n in range(count)), now=now
    )
    for row in await store.claim("shop-a", "relay", count, 30.0, now):
        assert await store.mark_done(row.id, "relay", now)


async def statuses(store: OutboxStore) -> list[Status]:
    return sorted((r.status for r in await store.list_rows(limit=1000)), key=str)


async def test_purge_expired_deletes_old_finished_rows_in_batches(store: OutboxStore) -> None:
    """Seven old done rows go in batches of three; recent done and pending rows stay."""
    await finish(store, 7, T0, "old")
    await finish(store, 2, T0 + 6 * DAY, "new")
    await add(store, write("variant:live", "live"), now=T0)
    assert 7 == await purge_expired(store, RETENTION, T0 + RETENTION + 1, batch=3)
    assert [Status.DONE, Status.DONE, Status.PENDING] == await statuses(store)


async def test_purge_batch_limit_deletes_the_oldest_first(store: OutboxStore) -> None:
    """purge(limit=N) deletes at most N rows, the least recently updated ones."""
    await finish(store, 2, T0, "a")
    await finish(store, 2, T0 + DAY, "b")
    assert 2 == await store.purge(timedelta(days=1), T0 + 3 * DAY, limit=2)
    assert {"variant:b0", "variant:b1"} == {r.target for r in await store.list_rows()}


async def test_the_relay_loop_purges_at_start_and_stops_on_stop(store: OutboxStore) -> None:
    """purge_loop runs a pass at once, passes again each interval, and returns on stop."""
    await finish(store, 3, T0, "old")
    stop, second_pass = asyncio.Event(), asyncio.Event()
    passes: list[float] = []

    def clock() -> float:  # read once per pass: the second read means the first pass ended
        passes.append(T0 + 8 * DAY)
        if len(passes) == 2:
            second_pass.set()
        return passes[-1]

    loop = asyncio.create_task(purge_loop(store, RETENTION, stop, clock=clock, interval=0.01))
    await asyncio.wait_for(second_pass.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(loop, timeout=10)
    assert [] == await store.list_rows()


async def test_retention_zero_runs_no_purge(store: OutboxStore) -> None:
    """With outbox.retention = 0 the relay keeps every finished row."""
    await finish(store, 2, T0, "old")
    async with purging(store, 0.0, asyncio.Event()):
        await asyncio.sleep(0)
    assert [Status.DONE, Status.DONE] == await statuses(store)


def test_purge_interval_is_a_tenth_of_the_retention_at_most_an_hour() -> None:
    """A pass every retention/10, capped at one hour."""
    assert (360.0, 3600.0) == (purge_interval(3600.0), purge_interval(RETENTION))
