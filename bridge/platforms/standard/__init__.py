"""Standard Webhooks v1: one platform plugin, :data:`PLUGIN`, for anything that signs that way.

``webhooks`` verifies and reads the event type, ``normalise`` maps canonical-shaped bodies,
``signing`` signs requests; ``client`` has no API to call (inbound only).
"""

from __future__ import annotations

from bridge.platforms.base import Platform, WebhookFunctions
from bridge.platforms.standard import normalise as _normalise
from bridge.platforms.standard import signing, webhooks
from bridge.platforms.standard.client import TARGETS, StandardClient
from bridge.platforms.standard.normalise import PII_PATHS
from bridge.platforms.standard.webhooks import NAME, SECRET_HEADERS, secret_bytes, sign

__all__ = ["NAME", "PLUGIN", "StandardClient", "secret_bytes", "sign"]


PLUGIN = Platform(
    name=NAME,
    title="Standard Webhooks",
    webhooks=WebhookFunctions(
        NAME,
        verify=webhooks.verify,
        verify_headers=webhooks.verify_headers,
        event_name=webhooks.event_name,  # the body's type; the URL's event when it has none
        normalise=_normalise.normalise,
    ),
    client=StandardClient,
    sign=signing.sign_request,
    targets=TARGETS,
    secret_headers=SECRET_HEADERS,
    pii_paths=PII_PATHS,
    needs_event=False,
    guess_event=signing.body_type,
)
