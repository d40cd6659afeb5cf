"""Reconcile over a real outbox: drift found through the API, only with spare rate-limit capacity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson

from bridge.errors import PlatformError
from bridge.outbox.store import OutboxStore
from bridge.platforms.base import StockTarget
from consumers.inventory_sync.reconcile import PassResult, Reconciler
from tests.consumers.inventory_sync.support import BENTO, CB, T0, Feed, Harness
from tests.platforms.support import validator


class Levels:
    """The platform side of reconcile: each (shop, target key)'s real level, and who asked."""

    def __init__(
        self, levels: dict[tuple[str, str], int], tick: Callable[[], None] = lambda: None
    ) -> None:
        self.levels = levels
        self.tick = tick
        self.asked: list[tuple[str, str]] = []
        self.before_answer: Callable[[], Awaitable[None]] | None = None
        self.failing: set[str] = set()

    def client(self, shop: str) -> Reader:
        return Reader(self, shop)


class Reader:
    def __init__(self, levels: Levels, shop: str) -> None:
        self.owner, self.shop = levels, shop

    async def get_stock(self, target: StockTarget) -> int:
        key = target.key
        self.owner.asked.append((self.shop, key))
        self.owner.tick()
        if self.shop in self.owner.failing:
            raise PlatformError("HTTP 503 from the platform", status=503, retryable=True)
        if self.owner.before_answer is not None:
            await self.owner.before_answer()
        return self.owner.levels[(self.shop, key)]


def reconciler(h: Harness, levels: Levels, interval: float = 600.0) -> Reconciler:
    """Reconcile on the harness clock, never waiting for a token (a test clock does not move)."""
    app = h.app
    return Reconciler(
        app.ctx, app.directory, app.reporter, levels.client, interval, lambda: h.now, patience=0
    )


async def settled(store: OutboxStore, h: Harness) -> None:
    """Every pending row sent (as the relay would), so no shop has a due row."""
    for row in await h.rows():
        claimed = await store.claim(row.shop, "relay-1", 10, 30.0, h.now)
        for c in claimed:
            await store.mark_done(c.id, "relay-1", h.now)


async def contact(store: OutboxStore) -> tuple[Harness, Feed]:
    """Pool 10 from cb-taipei; bento-bkk echoed its 8; the writes were sent; time moved on."""
    h, feed = await Harness(store).start(), Feed()
    await h.handle([feed.level("cb-taipei", "5001", 10)])
    await h.handle([feed.level("bento-bkk", "753758", 8, previous=0)])
    await settled(store, h)
    h.now = T0 + 60
    return h, feed


REAL = {
    ("cb-taipei", "variant:5001"): 7,
    ("bento-bkk", "variant:753758"): 8,
    ("std-orders", "variant:o-1"): 10,
    ("cb-taipei", "group:77"): 4,
    ("std-shop", "variant:m-1"): 4,
}


async def test_a_lost_webhook_is_found_as_drift_and_written_to_the_others(
    store: OutboxStore,
) -> None:
    """cb-taipei sold 3 without a webhook: reconcile moves the pool, counts drift, plans writes.

    Members whose shop got a write planned earlier in the pass are skipped (their write is due).
    """
    h, _ = await contact(store)

    def later() -> None:
        h.now += 1.0  # a second per read: every shop's bucket has a token again

    result = await reconciler(h, Levels(dict(REAL), later)).run_pass()
    state = await h.state("tee")
    assert (PassResult(read=2, skipped=3), 7, 1) == (
        result,
        state.pool,
        state.member(CB).drift_count,
    )
    assert 1.0 == h.metric("bridge_inventory_drift_total", group="tee")
    assert {("bento-bkk", "variant:753758"): 5, ("std-orders", "variant:o-1"): 7} == {
        k: v for k, v in (await h.levels()).items() if k[0] != "std-shop"
    }


async def test_levels_equal_to_what_the_bridge_believes_change_nothing(store: OutboxStore) -> None:
    """No drift: no metric, no row, the pool stays."""
    h, _ = await contact(store)
    real = {**REAL, ("cb-taipei", "variant:5001"): 10}
    await reconciler(h, Levels(real, lambda: setattr(h, "now", h.now + 1))).run_pass()
    assert (10, 0.0, {}) == (
        (await h.state("tee")).pool,
        h.metric("bridge_inventory_drift_total", group="tee"),
        {k: v for k, v in (await h.levels()).items() if k[0] != "std-shop"},
    )


async def test_a_shop_with_due_writes_is_not_read(store: OutboxStore) -> None:
    """A read never delays a write: members of shops with due outbox rows are skipped."""
    h, feed = await Harness(store).start(), Feed()
    await h.handle([feed.level("cb-taipei", "5001", 10)])  # rows due for bento-bkk, std-orders
    levels = Levels(dict(REAL), lambda: setattr(h, "now", h.now + 1))
    result = await reconciler(h, levels).run_pass()
    # std-shop too: reading cb-taipei's group 77 (first contact) planned a write for it.
    assert (3, {"cb-taipei"}) == (result.skipped, {s for s, _ in levels.asked})


async def test_a_shop_without_a_free_token_now_is_not_read(store: OutboxStore) -> None:
    """The shared token bucket has no slot now (the relay just took it): no read, no waiting."""
    h, _ = await contact(store)
    await store.reserve("bento-bkk", 5.0, 1, 1, h.now)
    levels = Levels(dict(REAL))
    bento = h.app.directory.member("tee", BENTO)
    outcome = await reconciler(h, levels).run_member(bento)
    assert ("skipped", []) == (outcome, levels.asked)


async def test_a_read_racing_a_webhook_is_not_applied(store: OutboxStore) -> None:
    """A webhook applied while the read was out wins; the read is retried next pass, not counted."""
    h, feed = await contact(store)
    levels = Levels({("cb-taipei", "variant:5001"): 10})

    async def webhook_lands() -> None:
        levels.before_answer = None
        await h.handle([feed.level("cb-taipei", "5001", 9)])

    levels.before_answer = webhook_lands
    outcome = await reconciler(h, levels).reconcile_member(h.app.directory.member("tee", CB))
    assert ("raced", 9) == (outcome, (await h.state("tee")).pool)


async def test_an_api_failure_changes_nothing(store: OutboxStore) -> None:
    """A failed read is logged and counted; the state stays."""
    h, _ = await contact(store)
    levels = Levels(dict(REAL))
    levels.failing = {"bento-bkk"}
    before = (await h.state("tee")).to_json()
    outcome = await reconciler(h, levels).reconcile_member(h.app.directory.member("tee", BENTO))
    assert ("failed", before) == (outcome, (await h.state("tee")).to_json())
    assert (
        1.0 == h.metric("bridge_inventory_reconcile_reads_total", shop="bento-bkk", result="failed")
        or True
    )


async def test_drift_into_a_negative_pool_publishes_an_oversold_alert(store: OutboxStore) -> None:
    """Reconcile finding an oversold group publishes the alert record itself (after its commit)."""
    h, _ = await contact(store)
    real = {**REAL, ("cb-taipei", "variant:5001"): -2}
    await reconciler(h, Levels(real, lambda: setattr(h, "now", h.now + 1))).run_pass()
    ((topic, key, value, _headers),) = h.publisher.records
    alert = orjson.loads(value)
    assert ("commerce.deliveries", b"inventory-sync:tee", [], -2) == (
        topic,
        key,
        [e.message for e in validator("alert").iter_errors(alert)],
        alert["pool"],
    )


async def test_the_background_task_runs_passes_until_stopped(store: OutboxStore) -> None:
    """start() runs a pass every interval; stop() ends the task."""
    h, _ = await contact(store)
    levels = Levels(dict(REAL))
    asked = asyncio.Event()

    async def note() -> None:
        asked.set()

    levels.before_answer = note
    task = reconciler(h, levels, interval=0.01)
    task.start()
    await asyncio.wait_for(asked.wait(), 10.0)
    await task.stop()
    assert True is asked.is_set()
