"""Reconcile and start-up reads through the real platform clients, against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.config import Config, parse_config
from bridge.devtools.simulator import point_config_at, running_simulator
from bridge.outbox.store import OutboxStore
from consumers.inventory_sync.reconcile import Reconciler
from tests.consumers.inventory_sync.support import CB, CB_GROUP, T0, Feed, Harness, config_text

SEED = {
    "shop": "cb-taipei",
    "variants": {"5001": 7, "6001": 4, "6003": 4},
    "products": {"5001": "1001"},
    "groups": {"77": 4},
    "group_members": {"77": ["6001", "6003"]},
}


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(parse_config(config_text(), {})) as url:
        async with httpx.AsyncClient() as http:
            (await http.post(f"{url}/_sim/stock", json=SEED)).raise_for_status()
        yield url


def simulated(url: str, text: str) -> Config:
    return point_config_at(parse_config(text, {}), url)


async def test_reconcile_finds_a_sale_whose_webhook_was_lost(
    store: OutboxStore, sim_url: str
) -> None:
    """The shop sold 3 and no webhook came: get_stock reads 7, the pool follows, drift is counted."""
    h = await Harness(store, simulated(sim_url, config_text())).start()
    try:
        await h.handle([Feed().level("cb-taipei", "5001", 10)])
        h.now = T0 + 60
        app = h.app
        reconciler = Reconciler(
            app.ctx, app.directory, app.reporter, app.client, 600.0, lambda: h.now, patience=0
        )
        variant = await reconciler.reconcile_member(app.directory.member("tee", CB))
        h.now += 1
        group = await reconciler.reconcile_member(app.directory.member("mug", CB_GROUP))
        tee, mug = await h.state("tee"), await h.state("mug")
    finally:
        await h.app.stop()
    assert ("applied", 7, 1) == (variant, tee.pool, tee.member(CB).drift_count)
    assert ("applied", 4) == (group, mug.pool)


async def test_start_up_reads_the_variants_of_a_platform_group(
    store: OutboxStore, sim_url: str
) -> None:
    """A group member without `variants` learns them from the platform API at start-up."""
    text = config_text().replace(', variants = ["6001", "6002"]', "")
    h = await Harness(store, simulated(sim_url, text)).start()
    await h.app.stop()
    found = h.app.directory.for_variant("cb-taipei", "6003")
    assert (CB_GROUP, None) == (
        found.key if found else None,
        h.app.directory.for_variant("cb-taipei", "6002"),
    )


async def test_start_up_without_the_add_on_still_runs(store: OutboxStore) -> None:
    """The group's variants cannot be read (422): the app starts, the member waits for reconcile."""
    text = config_text().replace(', variants = ["6001", "6002"]', "")
    async with running_simulator(parse_config(text, {}), no_sync_groups=["cb-taipei"]) as url:
        h = await Harness(store, simulated(url, text)).start()
        await h.app.stop()
    assert (None, 2) == (
        h.app.directory.for_variant("cb-taipei", "6001"),
        len(h.app.directory.groups),
    )
