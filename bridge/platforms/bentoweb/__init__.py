"""BentoWeb (Thailand): one platform plugin, :data:`PLUGIN`.

``webhooks`` checks the token and names events, ``normalise`` turns bodies into canonical events,
``client`` writes and reads stock (OAuth client credentials), ``signing`` sends as BentoWeb does.
"""

from __future__ import annotations

from bridge.platforms.base import Platform, WebhookFunctions
from bridge.platforms.bentoweb import normalise as _normalise
from bridge.platforms.bentoweb import signing, webhooks
from bridge.platforms.bentoweb.client import TARGETS, BentoWebClient
from bridge.platforms.bentoweb.normalise import ORDER_PII_FIELDS, PII_PATHS
from bridge.platforms.bentoweb.rules import check_shop
from bridge.platforms.bentoweb.webhooks import NAME, SECRET_HEADERS, STOCK_EVENT, ip_allowed

__all__ = [
    "NAME",
    "ORDER_PII_FIELDS",
    "PLUGIN",
    "BentoWebClient",
    "ip_allowed",
]


PLUGIN = Platform(
    name=NAME,
    title="BentoWeb",
    webhooks=WebhookFunctions(
        NAME,
        verify=webhooks.verify,
        verify_headers=webhooks.verify,  # the token is in the headers or the query
        event_name=webhooks.event_name,
        normalise=_normalise.normalise,
    ),
    client=BentoWebClient,
    sign=signing.sign,
    targets=TARGETS,
    secret_headers=SECRET_HEADERS,
    pii_paths=PII_PATHS,
    guess_event=signing.guess_event,
    stock_event=STOCK_EVENT,
    check_shop=check_shop,
)
