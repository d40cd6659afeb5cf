"""The Acme API: stock per bin, bearer token auth."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import orjson

from bridge.errors import PlatformError
from bridge.settings import ShopConfig
from bridge.targets import StockTarget, TargetCodec, TargetField

BIN = "bin"
TARGETS = TargetCodec((TargetField("acme_bin", BIN, "bins"),))


class AcmeClient:
    """``PUT``/``GET /bins/{id}`` with ``{"level": n}``."""

    def __init__(self, shop: ShopConfig, http: httpx.AsyncClient) -> None:
        self.shop = shop
        self.http = http

    def _url(self, target: StockTarget) -> str:
        if target.kind != BIN:
            raise PlatformError("Acme stock targets are bins", retryable=False)
        return f"{self.shop.api_base}/bins/{quote(target.id, safe='')}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.shop.api_token}"}

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None:
        headers = {**self._headers(), "Idempotency-Key": idempotency_key}
        response = await self.http.put(self._url(target), json={"level": quantity}, headers=headers)
        if response.status_code != 200:
            raise PlatformError(f"Acme answered {response.status_code}", retryable=True)

    async def get_stock(self, target: StockTarget) -> int:
        response = await self.http.get(self._url(target), headers=self._headers())
        level = orjson.loads(response.content)["level"]
        if not isinstance(level, int):
            raise PlatformError("Acme: no level", retryable=False)
        return level

    async def aclose(self) -> None:
        """The HTTP client belongs to the caller."""
