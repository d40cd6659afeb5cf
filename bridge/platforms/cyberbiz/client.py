"""The Cyberbiz API a shop's writes and reads go through: variants and inventory sync groups.

``Authorization: Bearer <api_token>``, 5 requests/s, 2 MB per request. The shared count of an
inventory sync group (庫存同步群組, a paid add-on) is a target of kind ``group``; a 422 there
usually means the shop lacks the add-on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

import bridge.platforms._http as _http
from bridge.errors import InvalidPayload, PlatformError
from bridge.platforms._common import quantity
from bridge.platforms.cyberbiz.webhooks import NAME
from bridge.settings import ShopConfig
from bridge.targets import GROUP, VARIANT, StockTarget, TargetCodec, TargetField

VARIANT_PATH = "/v1/products/{product_id}/product_variants/{variant_id}"
SYNC_GROUPS_PATH = "/v1/inventory_sync_groups"
SYNC_GROUP_PATH = "/v1/inventory_sync_groups/{group_id}"
STOCK_FIELD = "inventory_quantity"
SYNC_GROUP_HINT = (
    "Cyberbiz answered 422 for an inventory sync group: the shop probably lacks the inventory "
    "sync group add-on (庫存同步群組, a paid Cyberbiz add-on)"
)
TARGETS = TargetCodec(
    (
        TargetField("variant", VARIANT, "variants"),
        TargetField("cyberbiz_group", GROUP, "sync groups"),
    )
)


class CyberbizClient:
    """One Cyberbiz shop's API: ``Authorization: Bearer <api_token>``, 5 req/s, 2 MB/request."""

    def __init__(
        self, shop: ShopConfig, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.shop = shop
        self.http = http
        self.clock = clock

    def _headers(self) -> dict[str, str]:
        if not self.shop.api_token:
            raise PlatformError(f"shop {self.shop.id!r} has no api_token", retryable=False)
        if not self.shop.api_base:
            raise PlatformError(f"shop {self.shop.id!r} has no api_base", retryable=False)
        return {**_http.BASE_HEADERS, "Authorization": f"Bearer {self.shop.api_token}"}

    def _path(self, target: StockTarget) -> tuple[str, str | None]:
        """The resource of a target and the hint for a 422 on it."""
        if target.kind == GROUP:
            return SYNC_GROUP_PATH.format(group_id=quote(target.id, safe="")), SYNC_GROUP_HINT
        if target.kind != VARIANT:
            raise PlatformError(
                f"Cyberbiz has no stock target of kind {target.kind!r}", retryable=False
            )
        if not target.product:
            raise PlatformError(
                f"Cyberbiz variant {target.id} needs its product id: set 'product' on "
                "the sync-group member",
                retryable=False,
            )
        path = VARIANT_PATH.format(
            product_id=quote(target.product, safe=""), variant_id=quote(target.id, safe="")
        )
        return path, None

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None:
        """Variant stock, or the shared count of a Cyberbiz inventory sync group."""
        path, hint = self._path(target)
        headers = {**self._headers(), "Idempotency-Key": idempotency_key}
        content = _http.encode_body({STOCK_FIELD: quantity}, self.shop.max_request_bytes)
        response = await _http.send(
            self.http, "PUT", self.shop.api_base + path, NAME, headers=headers, content=content
        )
        _http.check(response, NAME, self.clock(), hint_422=hint)

    async def get_stock(self, target: StockTarget) -> int:
        """``inventory_quantity`` of the variant or of the inventory sync group."""
        path, _ = self._path(target)
        data = await self._get(path)
        if isinstance(data, dict):
            for wrapper in ("inventory_sync_group", "product_variant", "variant"):
                if isinstance(data.get(wrapper), dict):
                    data = data[wrapper]
                    break
        level = data.get(STOCK_FIELD) if isinstance(data, dict) else None
        try:
            found = quantity(level, STOCK_FIELD)
        except InvalidPayload as exc:
            raise PlatformError(f"Cyberbiz GET {path}: {exc}", retryable=False) from None
        if found is None:
            raise PlatformError(f"Cyberbiz GET {path}: no {STOCK_FIELD}", retryable=False)
        return found

    async def list_sync_groups(self) -> list[dict[str, Any]]:
        """``GET /v1/inventory_sync_groups`` (a bare list, or under ``inventory_sync_groups``)."""
        data = await self._get(SYNC_GROUPS_PATH)
        if isinstance(data, dict):
            data = data.get("inventory_sync_groups", data.get("data"))
        if not isinstance(data, list) or not all(isinstance(g, dict) for g in data):
            raise PlatformError("Cyberbiz: unexpected inventory sync group list", retryable=False)
        return data

    async def get_sync_group(self, group_id: str) -> dict[str, Any]:
        """``GET /v1/inventory_sync_groups/{id}`` (bare or ``{"inventory_sync_group": {...}}``)."""
        data = await self._get(SYNC_GROUP_PATH.format(group_id=quote(group_id, safe="")))
        if isinstance(data, dict) and isinstance(data.get("inventory_sync_group"), dict):
            data = data["inventory_sync_group"]
        if not isinstance(data, dict):
            raise PlatformError("Cyberbiz: unexpected inventory sync group", retryable=False)
        return data

    async def _get(self, path: str) -> Any:
        response = await _http.send(
            self.http, "GET", self.shop.api_base + path, NAME, headers=self._headers()
        )
        _http.check(response, NAME, self.clock(), hint_422=SYNC_GROUP_HINT)
        return _http.json_body(response, NAME)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
