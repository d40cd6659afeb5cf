"""Cyberbiz (Taiwan): one platform plugin, :data:`PLUGIN`.

``webhooks`` verifies and names events, ``normalise`` turns bodies into canonical events,
``client`` writes and reads stock, ``signing`` signs requests the way Cyberbiz does.
"""

from __future__ import annotations

from bridge.platforms.base import Platform, WebhookFunctions
from bridge.platforms.cyberbiz import normalise as _normalise
from bridge.platforms.cyberbiz import signing, webhooks
from bridge.platforms.cyberbiz.client import TARGETS, CyberbizClient
from bridge.platforms.cyberbiz.normalise import ORDER_PII, PII_PATHS
from bridge.platforms.cyberbiz.signing import signature
from bridge.platforms.cyberbiz.webhooks import NAME, SECRET_HEADERS, STOCK_EVENT

__all__ = ["NAME", "ORDER_PII", "PLUGIN", "CyberbizClient", "signature"]


PLUGIN = Platform(
    name=NAME,
    title="Cyberbiz",
    webhooks=WebhookFunctions(
        NAME,
        verify=webhooks.verify,
        verify_headers=webhooks.verify_headers,
        check_replay=webhooks.check_replay,
        event_name=webhooks.event_name,
        normalise=_normalise.normalise,
    ),
    client=CyberbizClient,
    sign=signing.sign,
    targets=TARGETS,
    secret_headers=SECRET_HEADERS,
    pii_paths=PII_PATHS,
    guess_event=signing.guess_event,
    stock_event=STOCK_EVENT,
)
