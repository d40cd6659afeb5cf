"""Sending a webhook the way BentoWeb does (for ``commerce-bridge sign`` and the simulator)."""

from __future__ import annotations

from urllib.parse import quote

import orjson

from bridge.platforms.base import SignedRequest
from bridge.platforms.bentoweb.webhooks import TOKEN_HEADER


def sign(secret: str, shop_id: str, body: bytes, event: str, now: float) -> SignedRequest:
    """The shop's token in ``X-Webhook-Token``; the event is the URL's last segment."""
    display = "-".join(part.capitalize() for part in TOKEN_HEADER.split("-"))
    return SignedRequest(f"/{quote(event, safe='')}", {display: secret})


def guess_event(body: bytes) -> str | None:
    """A plausible event for a sample body: an order, a variant, else a product."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("data"), dict) and "order" in data["data"]:
        return "order.new"
    if "variant_id" in data:
        return "variant.update"
    return "product.update" if "product_id" in data else None
