"""BentoWeb's own shop config rules."""

from __future__ import annotations

from bridge.errors import ConfigError
from bridge.settings import ShopConfig


def check_shop(shop: ShopConfig, where: str) -> None:
    """The API takes OAuth client credentials: ``client_id`` and ``client_secret`` together."""
    if (shop.client_id is None) != (shop.client_secret is None):
        missing = "client_secret" if shop.client_secret is None else "client_id"
        raise ConfigError(
            f"{where}.{missing}", "BentoWeb needs client_id and client_secret together"
        )
