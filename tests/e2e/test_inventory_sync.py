"""Inventory sync end to end, as real processes: sales at the simulated platforms reach every other
member through ingress → Kafka → inventory-sync → outbox → relay, and the platforms' webhooks of
the bridge's own writes come back without moving anything (issue 8, item 5 (a)-(e))."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable

import pytest

from tests.e2e.conftest import SyncStack

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

TEE = (("cb-taipei", "5001"), ("cb-tainan", "6001"), ("bento-bkk", "753758"))
CAP = (("cb-taipei", "5002"), ("cb-tainan", "6002"), ("bento-bkk", "753759"))


async def recount(
    stack: SyncStack, group: str, members: tuple[tuple[str, str], ...], qty: int
) -> None:
    """``sync-groups set GROUP QTY`` and wait until every member shows it."""
    done = stack.cli("sync-groups", "set", group, str(qty))
    assert 0 == done.returncode, done.stderr
    await stack.converged(group, members, qty)


def in_flight_to(stack: SyncStack, shop: str) -> bool:
    with sqlite3.connect(f"file:{stack.folder / 'outbox.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT count(*) FROM outbox WHERE shop = ? AND status = 'in_flight'", (shop,)
        ).fetchone()
    return bool(row[0])


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def outbox_idle(stack: SyncStack) -> bool:
    """No write of the bridge waits to be sent or is being sent."""
    with sqlite3.connect(f"file:{stack.folder / 'outbox.db'}?mode=ro", uri=True) as db:
        (busy,) = db.execute(
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')"
        ).fetchone()
    return 0 == int(busy)


async def settled(stack: SyncStack, members: tuple[tuple[str, str], ...]) -> None:
    """Until the outbox is idle and every member shows the same level at the simulator."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not (outbox_idle(stack) and len(set(await stack.levels(members))) == 1):
        assert loop.time() < deadline, "the writes never settled"
        await asyncio.sleep(0.02)


async def test_a_200_sales_over_three_shops_converge_under_faults_and_a_consumer_kill(
    sync_stack: SyncStack,
) -> None:
    """(a) 200 sales spread over 3 shops (each once the previous one's writes left the outbox),
    20 % of API calls failing and the consumer killed -9 half way: every shop ends at 300 - 200,
    and nothing is written once converged (no ping-pong). Sales racing writes in flight: (b), (c).
    """
    await sync_stack.start("--fail-rate", "0.1", "--fail-after-rate", "0.1", "--seed", "5")
    await recount(sync_stack, "tee", TEE, 300)
    rng = random.Random(8)
    for n in range(200):
        shop, variant = rng.choice(TEE)
        await sync_stack.sale(shop, variant)
        if n == 100:
            consumer = sync_stack.procs["inventory-sync"]
            consumer.kill9()
            consumer.start()
        await settled(sync_stack, TEE)
    await sync_stack.converged("tee", TEE, 100, timeout=120)
    writes = await sync_stack.writes()
    await asyncio.sleep(2.0)  # watch for ping-pong: nothing may be written once converged
    assert writes == await sync_stack.writes()
    assert writes <= 3 * 200  # members - 1 per sale, plus retries of the failed 20 %


async def test_b_two_sales_at_the_same_instant_both_count(sync_stack: SyncStack) -> None:
    """(b) A sale in two shops at the same moment, with everything running: both count, every
    shop ends at 50 - 1 - 2. (Two sales of the *same* size at once are (b2): then the second
    shop's level can equal the bridge's write to it, see docs/inventory-sync.md.)"""
    await sync_stack.start()
    await recount(sync_stack, "tee", TEE, 50)
    await asyncio.gather(
        sync_stack.sale("cb-taipei", "5001"), sync_stack.sale("bento-bkk", "753758", quantity=2)
    )
    await sync_stack.converged("tee", TEE, 47)


async def paused_relay_sales(
    stack: SyncStack, group: str, sales: list[tuple[str, str]], pool: int
) -> None:
    """Both ``sales`` at once with the relay stopped, until the consumer has counted them (the
    group's pool is ``pool``), then the relay again: no write of the bridge is sent before the
    second shop's webhook is in, the case the rule "a level equal to a write not yet sent is a
    sale" decides (docs/inventory-sync.md)."""
    relay = stack.procs["relay"]
    assert 0 == await relay.terminate()
    await asyncio.gather(*(stack.sale(shop, variant) for shop, variant in sales))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while stack.groups()[group]["pool"] != pool:
        assert loop.time() < deadline, stack.groups()[group]
        await asyncio.sleep(0.1)
    relay.start()
    await relay.wait_for("relay_started")


async def test_b2_two_sales_of_one_unit_at_once_both_count(sync_stack: SyncStack) -> None:
    """(b2) Two shops sell one unit at the same moment, so each shop's own level (49) equals the
    write the bridge plans for it after the other's sale: both count (their webhooks are in
    before any write is sent), every shop ends at 48, and the writes' echoes move nothing."""
    await sync_stack.start()
    await recount(sync_stack, "tee", TEE, 50)
    await paused_relay_sales(
        sync_stack, "tee", [("cb-taipei", "5001"), ("bento-bkk", "753758")], 48
    )
    await sync_stack.converged("tee", TEE, 48)


@pytest.mark.parametrize("lands_first", ["sale", "write"])
async def test_c_a_sale_while_the_bridges_write_is_in_flight_counts_once(
    sync_stack: SyncStack, lands_first: str
) -> None:
    """(c) A sale at cb-tainan while the bridge's write to cb-tainan is in flight (a slow API):
    whether the sale or the write lands first at the platform, the sale counts once."""
    await sync_stack.start()
    await recount(sync_stack, "tee", TEE, 50)
    await sync_stack.sim("POST", "/_sim/faults", {"latency_ms": 600})
    await sync_stack.sale("cb-taipei", "5001")  # the bridge now writes 49 to the other two
    if lands_first == "sale":
        await until(lambda: in_flight_to(sync_stack, "cb-tainan"))
    else:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (await sync_stack.levels((("cb-tainan", "6001"),)))[0] != 49:
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
    await sync_stack.sale("cb-tainan", "6001", quantity=2)
    await sync_stack.sim("POST", "/_sim/faults", {"latency_ms": 0})
    await sync_stack.converged("tee", TEE, 47)


async def test_d_a_dropped_webhook_is_caught_by_reconcile(sync_stack: SyncStack) -> None:
    """(d) A change at the platform whose webhook never arrives (the simulator sets the stock
    silently) is found by reconcile, treated as an external change and pushed to the others."""
    sync_stack.write(reconcile=1.0)
    await sync_stack.start()
    await recount(sync_stack, "tee", TEE, 30)
    await sync_stack.seed("cb-tainan", {"6001": 27})  # no webhook: "lost"
    await sync_stack.converged("tee", TEE, 27, timeout=60)
    drift = {m["member"]: m["drift"] for m in sync_stack.groups()["tee"]["members"]}
    assert 1 == sum(int(d) for d in drift.values())


async def test_e_sell_out_restock_and_an_honest_negative_pool(sync_stack: SyncStack) -> None:
    """(e) Selling the last units in one shop takes every shop to 0; a recount restocks them all;
    two shops selling the last unit at once (their webhooks in before the bridge writes, as in
    (b2)) leave the pool at -1 (oversold, reported), shown as 0 everywhere."""
    await sync_stack.start()
    await recount(sync_stack, "cap", CAP, 5)
    await sync_stack.sale("cb-taipei", "5002", quantity=5)
    await sync_stack.converged("cap", CAP, 0)
    await recount(sync_stack, "cap", CAP, 20)
    await recount(sync_stack, "cap", CAP, 1)
    await paused_relay_sales(
        sync_stack, "cap", [("cb-tainan", "6002"), ("bento-bkk", "753759")], -1
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        view = sync_stack.groups()["cap"]
        levels = await sync_stack.levels(CAP)
        if view["pool"] == -1 and levels == [0, 0, 0]:
            break
        assert loop.time() < deadline, (view, levels)
        await asyncio.sleep(0.1)
    assert view["oversold"] is True
