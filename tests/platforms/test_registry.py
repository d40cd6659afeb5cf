"""The platform registry: names, clients and webhook sides by platform name."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bridge.config import ShopConfig
from bridge.errors import ConfigError
from bridge.platforms import client_for, get_platform
from bridge.platforms.base import PlatformClient, StockTarget
from bridge.platforms.bentoweb import BentoWebClient
from bridge.platforms.cyberbiz import CyberbizClient
from bridge.platforms.standard import StandardClient
from tests.platforms.http_support import failure
from tests.platforms.support import shop

VARIANT = StockTarget("variant", "5001", "1001")
GROUP = StockTarget("group", "77")


# -- registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind"),
    [("cyberbiz", CyberbizClient), ("bentoweb", BentoWebClient), ("standard", StandardClient)],
)
async def test_client_for_picks_the_platform_client(platform: str, kind: type[Any]) -> None:
    """client_for returns the shop's platform client."""
    async with httpx.AsyncClient() as http:
        client: PlatformClient = client_for(shop(platform), http)
        assert kind is type(client)


async def test_standard_client_cannot_write() -> None:
    """Standard Webhooks shops have no stock API: a non-retryable error."""
    async with httpx.AsyncClient() as http:
        error = await failure(client_for(shop("standard"), http).set_stock(VARIANT, 1, "k"))
    assert False is error.retryable


async def test_unknown_platform_is_a_config_error() -> None:
    """get_platform and client_for name an unknown platform."""
    with pytest.raises(ConfigError, match="shopify"):
        get_platform("shopify")
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="shopify"):
            client_for(ShopConfig(id="s", platform="shopify"), http)
