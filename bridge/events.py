"""The canonical event: what every platform webhook becomes on Kafka."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ENTITIES = ("order", "product", "variant", "customer", "other")


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One normalised webhook.

    ``value`` is the JSON document published on Kafka (validated by ``schemas/{entity}.v1.json``);
    it already contains ``raw`` with PII handled per ``privacy.mode``.
    """

    id: str
    platform: str
    shop: str
    entity: str  # one of ENTITIES
    action: str  # created | updated | deleted | paid | cancelled | ...
    entity_id: str
    time: datetime | None
    value: dict[str, Any]

    @property
    def type(self) -> str:
        return f"commerce.{self.entity}.{self.action}"

    @property
    def key(self) -> str:
        return f"{self.shop}:{self.entity_id}"

    @property
    def source(self) -> str:
        return f"/{self.platform}/{self.shop}"


def event_id(shop: str, event: str, delivery_key: str) -> str:
    """Deterministic event id: the same delivery (same shop, event and key) maps to the same id."""
    digest = hashlib.sha256(f"{shop}\x1f{event}\x1f{delivery_key}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def body_digest(body: bytes) -> str:
    """SHA-256 of ``body``, hex. The last body's digest is remembered: the ingress asks for it
    twice per webhook (the platform's delivery key, the deduplicator's change digest)."""
    global _last
    if _last[0] is body:
        return _last[1]
    digest = hashlib.sha256(body).hexdigest()
    _last = (body, digest)
    return digest


_last: tuple[bytes, str] = (b"", hashlib.sha256(b"").hexdigest())
