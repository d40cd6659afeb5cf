"""Acme: a small platform defined in the test suite, to prove that a platform is one package.

Webhooks carry ``X-Acme-Token`` (the shop's secret) and ``X-Acme-Event``; a ``stock.changed`` body
is ``{"bin": id, "level": n, "at": iso-8601}``. The API keeps stock in *bins*, a target kind no
built-in platform has: ``PUT /bins/{id}`` ``{"level": n}`` and ``GET /bins/{id}``.
"""

from __future__ import annotations

from bridge.platforms.base import Platform
from tests.platforms.acme.client import TARGETS, AcmeClient
from tests.platforms.acme.webhooks import (
    EVENT_HEADER,
    NAME,
    STOCK_EVENT,
    TOKEN_HEADER,
    AcmeWebhooks,
    sign,
)

PLUGIN = Platform(
    name=NAME,
    title="Acme",
    webhooks=AcmeWebhooks(),
    client=AcmeClient,
    sign=sign,
    targets=TARGETS,
    secret_headers=frozenset({TOKEN_HEADER}),
    stock_event=STOCK_EVENT,
)

__all__ = ["EVENT_HEADER", "NAME", "PLUGIN", "TOKEN_HEADER"]
