"""The BentoWeb API a shop's stock goes through: OAuth client credentials, then product variants.

Unconfirmed by BentoWeb: the endpoint, method and field name below are the one place to change.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from urllib.parse import quote

import httpx

import bridge.platforms._http as _http
from bridge.errors import InvalidPayload, PlatformError
from bridge.platforms._common import quantity
from bridge.platforms.bentoweb.webhooks import NAME
from bridge.settings import ShopConfig
from bridge.targets import VARIANT, StockTarget, TargetCodec, TargetField

TOKEN_PATH = "/oauth/token"  # noqa: S105 - an endpoint path, not a secret
STOCK_PATH = "/product-variant/{variant_id}"
STOCK_METHOD = "PUT"
STOCK_FIELD = "stock"
TOKEN_REFRESH_MARGIN = 60.0  # seconds before expiry, or
TOKEN_REFRESH_FRACTION = 0.1  # this share of the lifetime when that is shorter
TARGETS = TargetCodec((TargetField("variant", VARIANT, "variants"),))


class BentoWebClient:
    """One BentoWeb shop's API: OAuth client credentials; the token is cached until near expiry."""

    def __init__(
        self, shop: ShopConfig, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.shop = shop
        self.http = http
        self.clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self, stale: str | None = None) -> str:
        """The cached token, fetched when missing, due, or equal to ``stale`` (after a 401)."""
        async with self._lock:
            token = self._token
            if token is not None and token != stale and self.clock() < self._refresh_at:
                return token
            return await self._fetch_token()

    async def _fetch_token(self) -> str:
        shop = self.shop
        if not shop.api_base:
            raise PlatformError(f"shop {shop.id!r} has no api_base", retryable=False)
        if not shop.client_id or not shop.client_secret:
            raise PlatformError(
                f"shop {shop.id!r} needs client_id and client_secret for BentoWeb's API",
                retryable=False,
            )
        form = {
            "grant_type": "client_credentials",
            "client_id": shop.client_id,
            "client_secret": shop.client_secret,
        }
        started = self.clock()
        response = await _http.send(
            self.http, "POST", shop.api_base + TOKEN_PATH, NAME,
            headers=dict(_http.BASE_HEADERS), data=form,
        )  # fmt: skip
        _http.check(response, NAME, self.clock())
        data = _http.json_body(response, NAME)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise PlatformError("BentoWeb token response has no access_token", retryable=False)
        lifetime = data.get("expires_in")
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            margin = min(TOKEN_REFRESH_MARGIN, TOKEN_REFRESH_FRACTION * float(lifetime))
            self._refresh_at = started + float(lifetime) - margin
        else:
            self._refresh_at = math.inf  # no lifetime given: keep it until a 401 says otherwise
        self._token = token
        return token

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None:
        content = _http.encode_body({STOCK_FIELD: quantity}, self.shop.max_request_bytes)
        await self._call(STOCK_METHOD, self._url(target), content, idempotency_key)

    async def get_stock(self, target: StockTarget) -> int:
        """The variant's ``stock`` (the same field a write sets)."""
        response = await self._call("GET", self._url(target), None, None)
        data = _http.json_body(response, NAME)
        for wrapper in ("data", "product_variant", "variant"):
            if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
                data = data[wrapper]
        level = data.get(STOCK_FIELD) if isinstance(data, dict) else None
        try:
            found = quantity(level, STOCK_FIELD)
        except InvalidPayload as exc:
            raise PlatformError(
                f"BentoWeb GET variant {target.id}: {exc}", retryable=False
            ) from None
        if found is None:
            raise PlatformError(
                f"BentoWeb GET variant {target.id}: no {STOCK_FIELD}", retryable=False
            )
        return found

    def _url(self, target: StockTarget) -> str:
        if target.kind != VARIANT:
            raise PlatformError("BentoWeb stock targets are variants", retryable=False)
        return self.shop.api_base + STOCK_PATH.format(variant_id=quote(target.id, safe=""))

    async def _call(
        self, method: str, url: str, content: bytes | None, key: str | None
    ) -> httpx.Response:
        token = await self.access_token()
        headers = {**_http.BASE_HEADERS, "Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        response = await _http.send(self.http, method, url, NAME, headers=headers, content=content)
        if response.status_code == 401:
            # Revoked or expired early: fetch a fresh token now, but retry the call through the
            # relay (a new rate-limit slot), never as an extra request beyond the shop's limit.
            await self.access_token(stale=token)
            raise PlatformError(
                "BentoWeb rejected the access token; refreshed it, the write will be retried",
                status=401,
                retryable=True,
            )
        _http.check(response, NAME, self.clock())
        return response

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
