"""Cyberbiz (Taiwan): one platform plugin, :data:`PLUGIN`.

``webhooks`` verifies and names events, ``normalise`` turns bodies into canonical events,
``client`` writes and reads stock, ``signing`` signs requests the way Cyberbiz does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bridge.events import CanonicalEvent
from bridge.platforms.base import Delivery, Platform
from bridge.platforms.cyberbiz import normalise as _normalise
from bridge.platforms.cyberbiz import signing, webhooks
from bridge.platforms.cyberbiz.client import TARGETS, CyberbizClient
from bridge.platforms.cyberbiz.normalise import ORDER_PII, PII_PATHS
from bridge.platforms.cyberbiz.signing import signature
from bridge.platforms.cyberbiz.webhooks import NAME, SECRET_HEADERS, STOCK_EVENT
from bridge.privacy import Privacy

__all__ = ["NAME", "ORDER_PII", "PLUGIN", "CyberbizClient", "CyberbizPlatform", "signature"]


class CyberbizPlatform:
    """The webhook side: HMAC verification, ``X-Cyberbiz-Event``, normalisation (pure)."""

    name: ClassVar[str] = NAME

    def verify(self, delivery: Delivery, now: float) -> None:
        webhooks.verify(delivery, now)

    def event_name(self, delivery: Delivery) -> str:
        return webhooks.event_name(delivery)

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        return _normalise.normalise(delivery, event, payload, privacy)


PLUGIN = Platform(
    name=NAME,
    title="Cyberbiz",
    webhooks=CyberbizPlatform(),
    client=CyberbizClient,
    sign=signing.sign,
    targets=TARGETS,
    secret_headers=SECRET_HEADERS,
    pii_paths=PII_PATHS,
    guess_event=signing.guess_event,
    stock_event=STOCK_EVENT,
)
