"""Cyberbiz (Taiwan): webhook verification, event names, normalisation, and the stock API.

Everything the bridge knows about Cyberbiz lives here (source: ../shared/seeds, in particular
cyberbiz-webhook-facts.md — gathered from a community SDK, not confirmed against the live platform).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from bridge.config import ShopConfig
from bridge.errors import PlatformError, UnknownEvent, VerificationFailed
from bridge.events import CanonicalEvent, body_digest
from bridge.platforms import _http
from bridge.platforms._common import (
    TAIPEI,
    action_for,
    all_keys_except,
    array,
    content_digest,
    customer_fields,
    envelope,
    flag,
    ident,
    line_item_fields,
    money,
    obj,
    opt_ident,
    opt_obj,
    order_fields,
    other_fields,
    product_fields,
    quantity,
    text,
    timestamp,
    variant_fields,
)
from bridge.platforms.base import Delivery, StockTarget
from bridge.privacy import Privacy

NAME = "cyberbiz"

SIGNATURE_HEADER = "x-cyberbiz-hmac-sha256"
EVENT_HEADER = "x-cyberbiz-event"
DOMAIN_HEADER = "x-cyberbiz-domain"

# Resource part of ``resource/action`` → canonical entity. Recognised but unmapped → "other".
RESOURCES = {
    "orders": "order",
    "products": "product",
    "variants": "variant",
    "product_variants": "variant",
    "customers": "customer",
    "apps": "other",
    "shop": "other",
    "collections": "other",
    "custom_collections": "other",
    "smart_collections": "other",
    "inventory_sync_groups": "other",
    "periodic_orders": "other",
    "einvoices": "other",
    "fulfillments": "other",
    "refunds": "other",
    "discounts": "other",
}
_EVENT = re.compile(r"([a-z_]{1,40})[/.]([a-z_]{1,40})")

# Where customer PII sits in an order body (top-level keys).
ORDER_PII = (
    "customer", "buyer", "receiver", "billing_address", "shipping_address", "einvoice",
    "card4no", "note", "email", "phone", "mobile", "browser_ip",
)  # fmt: skip
# Customers (and unmapped resources, which may hold anything) are PII except these keys.
CUSTOMER_KEEP = ("id", "created_at", "updated_at")
OTHER_KEEP = ("id", "created_at", "updated_at")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Cyberbiz-Hmac-Sha256`` value live traffic sends: lowercase hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _signature_bytes(given: str) -> bytes | None:
    """Hex (either case) or base64 (standard or URL-safe) of a 32-byte HMAC-SHA256."""
    value = given.strip()
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(raw) == hashlib.sha256().digest_size:
            return raw
    return None


class CyberbizPlatform:
    name: ClassVar[str] = NAME

    def verify_headers(self, delivery: Delivery, now: float) -> bytes:
        """Ingress hook (bridge/ingress/hooks.py): a well-formed signature header is present."""
        given = delivery.headers.get(SIGNATURE_HEADER)
        if not given:
            raise VerificationFailed("missing X-Cyberbiz-Hmac-Sha256 header")
        digest = _signature_bytes(given)
        if digest is None:
            raise VerificationFailed("X-Cyberbiz-Hmac-Sha256 is neither hex nor base64 HMAC-SHA256")
        return digest

    def verify(self, delivery: Delivery, now: float) -> None:
        digest = self.verify_headers(delivery, now)
        matched = False
        for secret in delivery.shop.webhook_secrets:  # several during a secret rotation
            expected = hmac.new(secret.encode(), delivery.body, hashlib.sha256).digest()
            matched |= hmac.compare_digest(expected, digest)
        if not matched:
            raise VerificationFailed("X-Cyberbiz-Hmac-Sha256 does not match")

    def event_name(self, delivery: Delivery) -> str:
        given = delivery.headers.get(EVENT_HEADER) or delivery.path_event
        if not given:
            raise UnknownEvent("no X-Cyberbiz-Event header and no event in the URL")
        match = _EVENT.fullmatch(given.strip().lower())
        if match is None or match[1] not in RESOURCES:
            raise UnknownEvent(f"not a Cyberbiz event: {given[:60]!r}")
        return f"{match[1]}/{match[2]}"

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        resource, _, verb = event.partition("/")
        entity = RESOURCES.get(resource)
        if entity is None:
            raise UnknownEvent(f"not a Cyberbiz event: {event[:60]!r}")
        body = obj(payload, "body")
        if entity == "order":
            entity_id, fields = _order(body)
            pii: tuple[Any, ...] = ORDER_PII
        elif entity == "variant":
            fields = _variant(body, None)
            entity_id, pii = fields["variant_id"], ()
        elif entity == "product":
            entity_id, fields = _product(body)
            pii = ()
        elif entity == "customer":
            entity_id = ident(body.get("id"), "id")
            fields = customer_fields(
                customer_id=entity_id,
                created_at=_time(body, "created_at"),
                updated_at=_time(body, "updated_at"),
            )
            pii = all_keys_except(body, CUSTOMER_KEEP)
        else:
            object_id = opt_ident(body.get("id"), "id")
            entity_id = object_id or resource
            fields = other_fields(resource=resource, object_id=object_id)
            pii = all_keys_except(body, OTHER_KEEP)
        updated = _time(body, "updated_at")
        if updated is None:
            key = body_digest(delivery.body)
        else:
            # (id, updated_at) as the facts advise, plus the normalised content: updated_at has
            # one-second resolution, and two stock changes within that second must both count.
            key = f"{entity_id}|{body['updated_at']}|{content_digest(fields)}"
        return envelope(
            delivery=delivery,
            platform=NAME,
            event=event,
            entity=entity,
            action=action_for(verb),
            entity_id=entity_id,
            delivery_key=key,
            occurred_at=updated or _time(body, "created_at"),
            payload=payload,
            pii_paths=pii,
            privacy=privacy,
            fields=fields,
        )

    def check_replay(
        self, delivery: Delivery, event: str, payload: Any, now: float, max_age: float
    ) -> None:
        """Ingress hook (bridge/ingress/hooks.py): the event name is outside the HMAC, so a
        captured body replayed under another name or long after must be refused."""
        resource = event.partition("/")[0]
        entity = RESOURCES.get(resource)
        body = payload if isinstance(payload, dict) else {}
        own = _SHAPE.get(entity or "", frozenset())
        foreign = frozenset().union(*(v for k, v in _EXCLUSIVE.items() if k != entity))
        if (own and not own & body.keys()) or foreign & body.keys():
            raise VerificationFailed(f"a {resource} event with a body of another kind")
        updated = _time(body, "updated_at")
        if max_age > 0 and updated is not None and now - updated.timestamp() > max_age:
            raise VerificationFailed("updated_at is older than ingress.max_event_age")


# Keys that show what a body is (check_replay): one of its own must be there ...
_SHAPE: dict[str, frozenset[str]] = {
    "order": frozenset({"line_items", "order_number"}),
    "variant": frozenset({"product_id", "inventory_quantity"}),
    "product": frozenset({"product_variants", "variants", "title"}),
}
# ... and none only another kind carries.
_EXCLUSIVE: dict[str, frozenset[str]] = {
    "order": frozenset({"line_items", "order_number"}),
    "variant": frozenset({"inventory_quantity"}),
    "product": frozenset({"product_variants"}),
}


def _time(body: dict[str, Any], field: str) -> datetime | None:
    return timestamp(body.get(field), field, TAIPEI)


def _order(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    order_id = ident(body.get("id"), "id")
    statuses = opt_obj(body.get("statuses"), "statuses")
    prices = opt_obj(body.get("prices"), "prices")
    lines = []
    for i, raw in enumerate(array(body.get("line_items"), "line_items")):
        item = obj(raw, f"line_items[{i}]")
        at = f"line_items[{i}]."
        lines.append(
            line_item_fields(
                line_id=opt_ident(item.get("id"), at + "id"),
                product_id=opt_ident(item.get("product_id"), at + "product_id"),
                variant_id=opt_ident(item.get("product_variant_id"), at + "product_variant_id"),
                sku=text(item.get("sku"), at + "sku"),
                title=text(item.get("title"), at + "title"),
                quantity=quantity(item.get("quantity"), at + "quantity"),
                price=money(item.get("price"), at + "price"),
            )
        )
    return order_id, order_fields(
        order_id=order_id,
        number=text(body.get("order_number"), "order_number"),
        status=text(statuses.get("order_status"), "statuses.order_status"),
        financial_status=text(statuses.get("financial_status"), "statuses.financial_status"),
        fulfillment_status=text(statuses.get("fulfillment_status"), "statuses.fulfillment_status"),
        return_status=text(statuses.get("return_status"), "statuses.return_status"),
        currency=text(body.get("currency"), "currency"),
        total=money(prices.get("total_price"), "prices.total_price"),
        subtotal=money(prices.get("total_line_items_price"), "prices.total_line_items_price"),
        shipping=money(prices.get("shipping_rate_price"), "prices.shipping_rate_price"),
        line_items=lines,
        created_at=_time(body, "created_at"),
        updated_at=_time(body, "updated_at"),
        cancelled_at=_time(body, "cancelled_at"),
        paid_at=_time(body, "paid_at"),
    )


def _managed(value: Any) -> bool | None:
    """``inventory_management`` is documented as a boolean; a tracker name also means "yes"."""
    if isinstance(value, str) and value not in ("", "0", "1", "true", "false"):
        return True
    return flag(value, "inventory_management")


def _variant(body: dict[str, Any], product_id: str | None, at: str = "") -> dict[str, Any]:
    return variant_fields(
        variant_id=ident(body.get("id"), at + "id"),
        product_id=opt_ident(body.get("product_id"), at + "product_id") or product_id,
        sku=text(body.get("sku"), at + "sku"),
        title=text(body.get("title"), at + "title"),
        price=money(body.get("price"), at + "price"),
        inventory_quantity=quantity(body.get("inventory_quantity"), at + "inventory_quantity"),
        inventory_managed=_managed(body.get("inventory_management")),
        updated_at=timestamp(body.get("updated_at"), at + "updated_at", TAIPEI),
    )


def _product(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product_id = ident(body.get("id"), "id")
    variants = [
        _variant(obj(raw, f"product_variants[{i}]"), product_id, f"product_variants[{i}].")
        for i, raw in enumerate(array(body.get("product_variants"), "product_variants"))
    ]
    return product_id, product_fields(
        product_id=product_id,
        title=text(body.get("title"), "title"),
        active=flag(body.get("published"), "published"),
        price=None,
        inventory_quantity=None,
        variants=variants,
        created_at=_time(body, "created_at"),
        updated_at=_time(body, "updated_at"),
    )


# -- stock API ---------------------------------------------------------------------------------

VARIANT_PATH = "/v1/products/{product_id}/product_variants/{variant_id}"
SYNC_GROUPS_PATH = "/v1/inventory_sync_groups"
SYNC_GROUP_PATH = "/v1/inventory_sync_groups/{group_id}"
STOCK_FIELD = "inventory_quantity"
SYNC_GROUP_HINT = (
    "Cyberbiz answered 422 for an inventory sync group: the shop probably lacks the inventory "
    "sync group add-on (庫存同步群組, a paid Cyberbiz add-on)"
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

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None:
        """Variant stock, or the shared count of a Cyberbiz inventory sync group."""
        if target.cyberbiz_group is not None:
            path = SYNC_GROUP_PATH.format(group_id=quote(target.cyberbiz_group, safe=""))
            hint: str | None = SYNC_GROUP_HINT
        elif target.variant is not None:
            if not target.product:
                raise PlatformError(
                    f"Cyberbiz variant {target.variant} needs its product id: set 'product' on "
                    "the sync-group member",
                    retryable=False,
                )
            path = VARIANT_PATH.format(
                product_id=quote(target.product, safe=""), variant_id=quote(target.variant, safe="")
            )
            hint = None
        else:
            raise PlatformError("stock target names neither a variant nor a group", retryable=False)
        headers = {**self._headers(), "Idempotency-Key": idempotency_key}
        content = _http.encode_body({STOCK_FIELD: quantity}, self.shop.max_request_bytes)
        response = await _http.send(
            self.http, "PUT", self.shop.api_base + path, NAME, headers=headers, content=content
        )
        _http.check(response, NAME, self.clock(), hint_422=hint)

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
