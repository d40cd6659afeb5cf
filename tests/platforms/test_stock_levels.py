"""Reading a stock level back (``get_stock``) through each platform client, against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.config import Config, ShopConfig
from bridge.devtools.simulator import point_config_at, running_simulator
from bridge.errors import PlatformError
from bridge.platforms import client_for
from bridge.targets import StockTarget

pytestmark = pytest.mark.timeout(60)

SHOPS = (
    ShopConfig(
        id="cb", platform="cyberbiz", api_token="cb-token", webhook_secrets=("s",),
        rate_limit=1000.0,
    ),
    ShopConfig(
        id="bw", platform="bentoweb", client_id="bw-id", client_secret="bw-secret",
        webhook_secrets=("t",), rate_limit=1000.0,
    ),
    ShopConfig(id="std", platform="standard", webhook_secrets=("u",)),
)  # fmt: skip
CONFIG = Config(shops={s.id: s for s in SHOPS})
SEEDS = (
    {"shop": "cb", "variants": {"5001": 7, "5002": 3}, "products": {"5001": "1001"},
     "groups": {"77": 4}, "group_members": {"77": ["5002"]}},
    {"shop": "bw", "variants": {"753758": 12}},
)  # fmt: skip


@pytest.fixture
async def pointed() -> AsyncIterator[tuple[Config, httpx.AsyncClient]]:
    """A seeded simulator, the config pointed at it, and one HTTP client for the API clients."""
    async with running_simulator(CONFIG) as url, httpx.AsyncClient(timeout=10.0) as http:
        for seed in SEEDS:
            assert 200 == (await http.post(f"{url}/_sim/stock", json=seed)).status_code
        yield point_config_at(CONFIG, url), http


@pytest.mark.parametrize(
    ("shop", "target", "level"),
    [
        ("cb", StockTarget("variant", "5001", "1001"), 7),
        ("cb", StockTarget("group", "77"), 4),
        ("bw", StockTarget("variant", "753758"), 12),
    ],
)
async def test_get_stock_reads_the_simulated_level(
    pointed: tuple[Config, httpx.AsyncClient], shop: str, target: StockTarget, level: int
) -> None:
    """get_stock answers the level the platform holds for a variant or a sync group."""
    config, http = pointed
    assert level == await client_for(config.shops[shop], http).get_stock(target)


@pytest.mark.parametrize(
    ("shop", "target"),
    [("cb", StockTarget("variant", "5001", "1001")), ("bw", StockTarget("variant", "753758"))],
)
async def test_get_stock_reads_back_a_write(
    pointed: tuple[Config, httpx.AsyncClient], shop: str, target: StockTarget
) -> None:
    """After set_stock, get_stock answers the level just written."""
    config, http = pointed
    client = client_for(config.shops[shop], http)
    await client.set_stock(target, 41, f"k-{shop}")
    assert 41 == await client.get_stock(target)


async def test_get_stock_of_an_unknown_variant_is_final(
    pointed: tuple[Config, httpx.AsyncClient],
) -> None:
    """A variant the platform does not know is a 404: a non-retryable PlatformError."""
    config, http = pointed
    with pytest.raises(PlatformError) as info:
        await client_for(config.shops["bw"], http).get_stock(StockTarget("variant", "1"))
    assert (404, False) == (info.value.status, info.value.retryable)


async def test_standard_shops_have_no_level_to_read(
    pointed: tuple[Config, httpx.AsyncClient],
) -> None:
    """A Standard Webhooks shop has no API: reading a level is a non-retryable error."""
    config, http = pointed
    with pytest.raises(PlatformError) as info:
        await client_for(config.shops["std"], http).get_stock(StockTarget("variant", "1"))
    assert False is info.value.retryable
