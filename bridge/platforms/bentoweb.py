"""BentoWeb (Thailand): token verification, per-URL event names, normalisation, and the stock API.

Source: ../shared/seeds/bentoweb-callback-webhook-examples.txt. BentoWeb signs nothing and puts no
event name in the body: each event is subscribed to its own URL (``/webhooks/{shop}/{event}``) and
authenticated by a per-shop secret token. Its times carry no zone; the shops are in Thailand, so
they are read as Asia/Bangkok (UTC+7) — an assumption, not documented by BentoWeb.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from bridge.config import ShopConfig
from bridge.errors import PlatformError, UnknownEvent, VerificationFailed
from bridge.events import CanonicalEvent, body_digest
from bridge.platforms import _http
from bridge.platforms._common import (
    BANGKOK,
    array,
    envelope,
    flag,
    ident,
    line_item_fields,
    money,
    obj,
    opt_ident,
    opt_obj,
    order_fields,
    product_fields,
    quantity,
    text,
    timestamp,
    variant_fields,
)
from bridge.platforms.base import Delivery, StockTarget
from bridge.privacy import Privacy

NAME = "bentoweb"

TOKEN_HEADER = "x-webhook-token"  # noqa: S105 - a header name, not a secret
TOKEN_QUERY = "token"  # noqa: S105 - a query parameter name, not a secret

# Event (the URL's last segment) → (entity, canonical action).
EVENTS = {
    "order.new": ("order", "created"),
    "order.paid": ("order", "paid"),
    "order.cancel": ("order", "cancelled"),
    "variant.add": ("variant", "created"),
    "variant.update": ("variant", "updated"),
    "variant.delete": ("variant", "deleted"),
    "product.add": ("product", "created"),
    "product.update": ("product", "updated"),
    "product.delete": ("product", "deleted"),
}
# Spellings an operator may well use when subscribing the URLs; mapped to BentoWeb's own names so
# that event ids (and thus deduplication) do not depend on the spelling.
_NOUNS = {
    "order": "order", "product": "product", "variant": "variant",
    "product_variant": "variant", "product-variant": "variant", "productvariant": "variant",
}  # fmt: skip
_VERBS = {
    "order": {"new": "new", "create": "new", "created": "new", "paid": "paid", "pay": "paid",
              "cancel": "cancel", "cancelled": "cancel", "canceled": "cancel"},
    "variant": {"add": "add", "create": "add", "created": "add", "update": "update",
                "updated": "update", "edit": "update", "delete": "delete", "deleted": "delete",
                "remove": "delete"},
}  # fmt: skip
_VERBS["product"] = _VERBS["variant"]

# PII in an order (``data.order.<field>``, and the same fields in each ``sub_order``).
ORDER_PII_FIELDS = (
    "firstname", "lastname", "full_name", "email", "phone", "idcard",
    "shipping_firstname", "shipping_lastname", "shipping_email", "shipping_phone",
    "shipping_address_1", "shipping_address_2", "shipping_subdistrict", "shipping_district",
    "shipping_province", "shipping_zipcode", "shipping_gps", "shipping_ems",
    "shipping_content", "payment_content", "ip_address", "note", "special_req", "admin_note",
    "ref_code", "invoice_url", "order_billing", "order_attachment", "order_social",
    "order_line_shopping", "order_shopee_api", "order_tik_tok_shop", "shopee_api_transaction",
    "order_lazada",
)  # fmt: skip
ORDER_PII = tuple(f"data.order.{f}" for f in ORDER_PII_FIELDS) + tuple(
    f"data.order.sub_order.*.{f}" for f in ORDER_PII_FIELDS
)
PRODUCT_PII: tuple[str, ...] = ()
VARIANT_PII: tuple[str, ...] = ()


@lru_cache(maxsize=256)
def _networks(
    allowed: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parsed allow-list; an entry that does not parse allows nothing (fail closed)."""
    networks = []
    for entry in allowed:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def ip_allowed(client_ip: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether ``client_ip`` is in one of the ``allowed`` addresses/CIDR blocks."""
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(allowed))


class BentoWebPlatform:
    name: ClassVar[str] = NAME

    def verify(self, delivery: Delivery, now: float) -> None:
        shop = delivery.shop
        if shop.allowed_ips and not ip_allowed(delivery.client_ip, shop.allowed_ips):
            raise VerificationFailed("source address not in the shop's allowed_ips")
        token = delivery.headers.get(TOKEN_HEADER) or delivery.query.get(TOKEN_QUERY)
        if not token:
            raise VerificationFailed("missing webhook token (X-Webhook-Token or ?token=)")
        given = token.encode()
        matched = False
        for secret in shop.webhook_secrets:  # several during a rotation; compare them all
            matched |= hmac.compare_digest(given, secret.encode())
        if not matched:
            raise VerificationFailed("webhook token does not match")

    def verify_headers(self, delivery: Delivery, now: float) -> None:
        """Ingress hook (bridge/ingress/hooks.py): the token is in the headers or query."""
        self.verify(delivery, now)

    def event_name(self, delivery: Delivery) -> str:
        given = delivery.path_event
        if not given:
            raise UnknownEvent("BentoWeb needs the event in the URL: /webhooks/{shop}/{event}")
        noun, _, verb = given.strip().lower().rpartition(".")
        canonical = _NOUNS.get(noun)
        mapped = _VERBS[canonical].get(verb) if canonical else None
        if canonical is None or mapped is None:
            raise UnknownEvent(f"not a BentoWeb event: {given[:60]!r}")
        return f"{canonical}.{mapped}"

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        if event not in EVENTS:
            raise UnknownEvent(f"not a BentoWeb event: {event[:60]!r}")
        entity, action = EVENTS[event]
        body = obj(payload, "body")
        if entity == "order":
            entity_id, fields = _order(body)
            pii: tuple[str, ...] = ORDER_PII
            occurred = _order_time(body)
        elif entity == "variant":
            fields = _variant(body)
            entity_id, pii, occurred = fields["variant_id"], VARIANT_PII, None
        else:
            entity_id, fields = _product(body)
            pii, occurred = PRODUCT_PII, None
        return envelope(
            delivery=delivery,
            platform=NAME,
            event=event,
            entity=entity,
            action=action,
            entity_id=entity_id,
            delivery_key=body_digest(delivery.body),  # no delivery id, no reliable updated_at
            occurred_at=occurred,
            payload=payload,
            pii_paths=pii,
            privacy=privacy,
            fields=fields,
        )


def _time(body: dict[str, Any], field: str, at: str = "") -> datetime | None:
    return timestamp(body.get(field), at + field, BANGKOK)


def _order_body(body: dict[str, Any]) -> dict[str, Any]:
    """Orders come wrapped: ``{"status": 1, "data": {"order": {...}}}``."""
    return obj(obj(body.get("data"), "data").get("order"), "data.order")


def _order_time(body: dict[str, Any]) -> datetime | None:
    order = _order_body(body)
    return _time(order, "date_modified") or _time(order, "date_created")


def _order(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    order = _order_body(body)
    at = "data.order."
    order_id = ident(order.get("order_id"), at + "order_id")
    lines = []
    for i, raw in enumerate(array(order.get("order_item"), at + "order_item")):
        here = f"{at}order_item[{i}]."
        item = obj(raw, here[:-1])
        lines.append(
            line_item_fields(
                line_id=opt_ident(item.get("order_item_id"), here + "order_item_id"),
                product_id=opt_ident(item.get("product_id"), here + "product_id"),
                variant_id=opt_ident(item.get("product_variant_id"), here + "product_variant_id"),
                sku=text(item.get("sku"), here + "sku"),
                title=text(item.get("name"), here + "name"),
                quantity=quantity(item.get("qty"), here + "qty"),
                price=money(item.get("price"), here + "price"),
            )
        )
    paid = flag(order.get("is_paid"), at + "is_paid")
    if paid is None:
        paid = flag(order.get("payment_status"), at + "payment_status")
    returned = flag(order.get("return_order"), at + "return_order")
    currency = opt_obj(order.get("currency"), at + "currency")
    return order_id, order_fields(
        order_id=order_id,
        number=text(order.get("full_order_code"), at + "full_order_code"),
        status=text(order.get("order_status_id"), at + "order_status_id"),
        financial_status=None if paid is None else ("paid" if paid else "pending"),
        fulfillment_status=None,
        return_status="returned" if returned else None,
        currency=text(currency.get("iso4217"), at + "currency.iso4217"),
        total=money(order.get("grand_total"), at + "grand_total"),
        subtotal=money(order.get("sub_total"), at + "sub_total"),
        shipping=money(order.get("shipping"), at + "shipping"),
        line_items=lines,
        created_at=_time(order, "date_created", at),
        updated_at=_time(order, "date_modified", at),
        cancelled_at=_time(order, "date_cancelled", at),
        paid_at=_time(order, "payment_datetime", at),
    )


def _variant(body: dict[str, Any]) -> dict[str, Any]:
    return variant_fields(
        variant_id=ident(body.get("variant_id"), "variant_id"),
        product_id=opt_ident(body.get("product_id"), "product_id"),
        sku=text(body.get("sku"), "sku"),
        title=text(body.get("variant_name"), "variant_name"),
        price=money(body.get("price"), "price"),
        inventory_quantity=quantity(body.get("new_stock"), "new_stock"),
        previous_quantity=quantity(body.get("old_stock"), "old_stock"),
        active=flag(body.get("active"), "active"),
    )


def _product(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product_id = ident(body.get("product_id"), "product_id")
    return product_id, product_fields(
        product_id=product_id,
        title=text(body.get("name"), "name"),
        active=flag(body.get("active"), "active"),
        price=money(body.get("price"), "price"),
        inventory_quantity=quantity(body.get("remain_stock"), "remain_stock"),
        variants=[],
        created_at=_time(body, "date_created"),
        updated_at=_time(body, "date_modified"),
    )


# -- stock API ---------------------------------------------------------------------------------
# Unconfirmed by BentoWeb: the endpoint, method and field name below are the one place to change.

TOKEN_PATH = "/oauth/token"  # noqa: S105 - an endpoint path, not a secret
STOCK_PATH = "/product-variant/{variant_id}"
STOCK_METHOD = "PUT"
STOCK_FIELD = "stock"
TOKEN_REFRESH_MARGIN = 60.0  # seconds before expiry, or
TOKEN_REFRESH_FRACTION = 0.1  # this share of the lifetime when that is shorter


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
        if target.cyberbiz_group is not None or target.variant is None:
            raise PlatformError("BentoWeb stock targets are variants", retryable=False)
        url = self.shop.api_base + STOCK_PATH.format(variant_id=quote(target.variant, safe=""))
        content = _http.encode_body({STOCK_FIELD: quantity}, self.shop.max_request_bytes)
        token = await self.access_token()
        response = await self._write(url, content, token, idempotency_key)
        if response.status_code == 401:
            # Revoked or expired early: fetch a fresh token now, but retry the write through the
            # relay (a new rate-limit slot), never as an extra request beyond the shop's limit.
            await self.access_token(stale=token)
            raise PlatformError(
                "BentoWeb rejected the access token; refreshed it, the write will be retried",
                status=401,
                retryable=True,
            )
        _http.check(response, NAME, self.clock())

    async def _write(self, url: str, content: bytes, token: str, key: str) -> httpx.Response:
        headers = {
            **_http.BASE_HEADERS,
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
        }
        return await _http.send(
            self.http, STOCK_METHOD, url, NAME, headers=headers, content=content
        )

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""
