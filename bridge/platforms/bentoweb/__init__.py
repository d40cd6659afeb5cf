"""BentoWeb (Thailand): one platform plugin, :data:`PLUGIN`.

``webhooks`` checks the token and names events, ``normalise`` turns bodies into canonical events,
``client`` writes and reads stock (OAuth client credentials), ``signing`` sends as BentoWeb does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bridge.events import CanonicalEvent
from bridge.platforms.base import Delivery, Platform
from bridge.platforms.bentoweb import normalise as _normalise
from bridge.platforms.bentoweb import signing, webhooks
from bridge.platforms.bentoweb.client import TARGETS, BentoWebClient
from bridge.platforms.bentoweb.normalise import ORDER_PII_FIELDS, PII_PATHS
from bridge.platforms.bentoweb.rules import check_shop
from bridge.platforms.bentoweb.webhooks import NAME, SECRET_HEADERS, STOCK_EVENT, ip_allowed
from bridge.privacy import Privacy

__all__ = [
    "NAME",
    "ORDER_PII_FIELDS",
    "PLUGIN",
    "BentoWebClient",
    "BentoWebPlatform",
    "ip_allowed",
]


class BentoWebPlatform:
    """The webhook side: token and allow-list, per-URL event names, normalisation (pure)."""

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
    title="BentoWeb",
    webhooks=BentoWebPlatform(),
    client=BentoWebClient,
    sign=signing.sign,
    targets=TARGETS,
    secret_headers=SECRET_HEADERS,
    pii_paths=PII_PATHS,
    guess_event=signing.guess_event,
    stock_event=STOCK_EVENT,
    check_shop=check_shop,
)
