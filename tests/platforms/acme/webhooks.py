"""Acme webhooks: a shared-secret header, the event in a header, one stock event."""

from __future__ import annotations

import hmac
from datetime import UTC
from typing import Any

from bridge.errors import UnknownEvent, VerificationFailed
from bridge.events import CanonicalEvent, body_digest
from bridge.platforms._common import envelope, ident, obj, quantity, timestamp, variant_fields
from bridge.platforms.base import Delivery, SignedRequest
from bridge.privacy import Privacy

NAME = "acme"
TOKEN_HEADER = "x-acme-token"
EVENT_HEADER = "x-acme-event"
STOCK_EVENT = "stock.changed"


class AcmeWebhooks:
    """Verification, event naming and normalisation of Acme webhooks."""

    name = NAME

    def verify(self, delivery: Delivery, now: float) -> None:
        given = delivery.headers.get(TOKEN_HEADER, "").encode()
        if not any(hmac.compare_digest(given, s.encode()) for s in delivery.shop.webhook_secrets):
            raise VerificationFailed("X-Acme-Token does not match")

    def event_name(self, delivery: Delivery) -> str:
        event = delivery.headers.get(EVENT_HEADER)
        if event != STOCK_EVENT:
            raise UnknownEvent(f"not an Acme event: {event!r}")
        return event

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        body = obj(payload, "body")
        bin_id = ident(body.get("bin"), "bin")
        at = timestamp(body.get("at"), "at", UTC)
        fields = variant_fields(
            variant_id=bin_id,
            product_id=None,
            sku=None,
            title=None,
            price=None,
            inventory_quantity=quantity(body.get("level"), "level"),
            updated_at=at,
        )
        return envelope(
            delivery=delivery,
            platform=NAME,
            event=event,
            entity="variant",
            action="updated",
            entity_id=bin_id,
            delivery_key=body_digest(delivery.body),
            occurred_at=at,
            payload=payload,
            pii_paths=(),
            privacy=privacy,
            fields=fields,
        )


def sign(secret: str, shop_id: str, body: bytes, event: str, now: float) -> SignedRequest:
    """What Acme sends: the token and the event, both as headers."""
    return SignedRequest("", {"X-Acme-Token": secret, "X-Acme-Event": event})
