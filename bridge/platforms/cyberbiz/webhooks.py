"""Cyberbiz webhooks: the HMAC verification and the event name (``X-Cyberbiz-*`` headers).

Source: ../shared/seeds, in particular cyberbiz-webhook-facts.md — gathered from a community SDK,
not confirmed against the live platform. Live traffic sends the HMAC in hex, the docs say base64:
both are accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from bridge.errors import UnknownEvent, VerificationFailed
from bridge.platforms.base import Delivery

NAME = "cyberbiz"

SIGNATURE_HEADER = "x-cyberbiz-hmac-sha256"
EVENT_HEADER = "x-cyberbiz-event"
DOMAIN_HEADER = "x-cyberbiz-domain"
DOMAIN_SIGNATURE_HEADER = "x-cyberbiz-domain-hmac-sha256"
SHOP_DOMAIN_HEADER = "x-cyberbiz-shop-domain"
SECRET_HEADERS = frozenset({SIGNATURE_HEADER, DOMAIN_SIGNATURE_HEADER})
STOCK_EVENT = "variants/update"  # no inventory event: a variant update carries the stock

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


def verify(delivery: Delivery, now: float) -> None:
    """The HMAC-SHA256 of the raw body under one of the shop's secrets (several in a rotation)."""
    given = delivery.headers.get(SIGNATURE_HEADER)
    if not given:
        raise VerificationFailed("missing X-Cyberbiz-Hmac-Sha256 header")
    digest = _signature_bytes(given)
    if digest is None:
        raise VerificationFailed("X-Cyberbiz-Hmac-Sha256 is neither hex nor base64 HMAC-SHA256")
    matched = False
    for secret in delivery.shop.webhook_secrets:  # several during a secret rotation
        expected = hmac.new(secret.encode(), delivery.body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise VerificationFailed("X-Cyberbiz-Hmac-Sha256 does not match")


def event_name(delivery: Delivery) -> str:
    """``resource/action`` from ``X-Cyberbiz-Event`` (or the URL's event segment)."""
    given = delivery.headers.get(EVENT_HEADER) or delivery.path_event
    if not given:
        raise UnknownEvent("no X-Cyberbiz-Event header and no event in the URL")
    match = _EVENT.fullmatch(given.strip().lower())
    if match is None or match[1] not in RESOURCES:
        raise UnknownEvent(f"not a Cyberbiz event: {given[:60]!r}")
    return f"{match[1]}/{match[2]}"
