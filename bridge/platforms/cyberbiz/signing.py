"""Signing a request the way Cyberbiz does (for ``commerce-bridge sign`` and the simulator)."""

from __future__ import annotations

import hashlib
import hmac

import orjson

from bridge.platforms.base import SignedRequest
from bridge.platforms.cyberbiz.webhooks import (
    DOMAIN_HEADER,
    DOMAIN_SIGNATURE_HEADER,
    EVENT_HEADER,
    SHOP_DOMAIN_HEADER,
    SIGNATURE_HEADER,
)

USER_AGENT = "CyberbizAppWebhook/1.0"


def signature(secret: str, body: bytes) -> str:
    """The ``X-Cyberbiz-Hmac-Sha256`` value live traffic sends: lowercase hex."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(secret: str, shop_id: str, body: bytes, event: str, now: float) -> SignedRequest:
    """The headers Cyberbiz sends with a webhook; the event is a header, not in the URL."""
    domain = f"{shop_id}.cyberbiz.co"
    headers = {
        "user-agent": USER_AGENT,
        EVENT_HEADER: event,
        DOMAIN_HEADER: domain,
        SIGNATURE_HEADER: signature(secret, body),
        DOMAIN_SIGNATURE_HEADER: signature(secret, domain.encode()),
        SHOP_DOMAIN_HEADER: f"{shop_id}.example.com",
    }
    return SignedRequest("", {_display(name): value for name, value in headers.items()})


def _display(name: str) -> str:
    """``x-cyberbiz-event`` → ``X-Cyberbiz-Event``, as Cyberbiz spells its headers."""
    return "-".join(part.capitalize() for part in name.split("-"))


def guess_event(body: bytes) -> str | None:
    """A plausible event for a sample body: orders, products, else a variant with stock."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if "line_items" in data or "order_number" in data:
        return "orders/create"
    if "product_variants" in data or "published" in data:
        return "products/update"
    return "variants/update" if "inventory_quantity" in data else None
