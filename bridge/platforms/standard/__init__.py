"""Standard Webhooks v1: one platform plugin, :data:`PLUGIN`, for anything that signs that way.

``webhooks`` verifies and reads the event type, ``normalise`` maps canonical-shaped bodies,
``signing`` signs requests; ``client`` has no API to call (inbound only).
"""

from __future__ import annotations

from typing import Any, ClassVar

from bridge.events import CanonicalEvent
from bridge.platforms.base import Delivery, Platform
from bridge.platforms.standard import normalise as _normalise
from bridge.platforms.standard import signing, webhooks
from bridge.platforms.standard.client import TARGETS, StandardClient
from bridge.platforms.standard.normalise import PII_PATHS
from bridge.platforms.standard.webhooks import NAME, SECRET_HEADERS, secret_bytes, sign
from bridge.privacy import Privacy

__all__ = ["NAME", "PLUGIN", "StandardClient", "StandardPlatform", "secret_bytes", "sign"]


class StandardPlatform:
    """The webhook side: Standard Webhooks signatures, the body's ``type``, normalisation."""

    name: ClassVar[str] = NAME

    def verify(self, delivery: Delivery, now: float) -> None:
        webhooks.verify(delivery, now)

    def event_name(self, delivery: Delivery) -> str:
        """The body's ``type``; the URL's event when the body has none."""
        return webhooks.event_name(delivery)

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        return _normalise.normalise(delivery, event, payload, privacy)


PLUGIN = Platform(
    name=NAME,
    title="Standard Webhooks",
    webhooks=StandardPlatform(),
    client=StandardClient,
    sign=signing.sign_request,
    targets=TARGETS,
    secret_headers=SECRET_HEADERS,
    pii_paths=PII_PATHS,
    needs_event=False,
    guess_event=signing.body_type,
)
