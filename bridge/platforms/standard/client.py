"""Standard Webhooks is inbound only: a shop on it has no API to write or read stock through."""

from __future__ import annotations

import httpx

from bridge.errors import PlatformError
from bridge.settings import ShopConfig
from bridge.targets import VARIANT, StockTarget, TargetCodec, TargetField

TARGETS = TargetCodec((TargetField("variant", VARIANT, "variants"),))


class StandardClient:
    """Every call fails for good (non-retryable): there is no stock API to call."""

    def __init__(self, shop: ShopConfig, http: httpx.AsyncClient) -> None:
        self.shop = shop
        self.http = http

    def _no_api(self) -> PlatformError:
        return PlatformError(
            f"shop {self.shop.id!r} uses Standard Webhooks, which has no stock API",
            retryable=False,
        )

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None:
        raise self._no_api()

    async def get_stock(self, target: StockTarget) -> int:
        raise self._no_api()

    async def aclose(self) -> None:
        """Nothing to release."""
