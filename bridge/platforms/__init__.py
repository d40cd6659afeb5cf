"""The platforms the bridge speaks: one module each, registered here by name.

Adding a platform is adding its module and one line in each table below (and its name to
``bridge.config.PLATFORMS``).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from bridge.config import ShopConfig
from bridge.errors import ConfigError
from bridge.platforms.base import PlatformClient, WebhookPlatform
from bridge.platforms.bentoweb import BentoWebClient, BentoWebPlatform
from bridge.platforms.cyberbiz import CyberbizClient, CyberbizPlatform
from bridge.platforms.standard import StandardClient, StandardPlatform

_PLATFORMS: dict[str, WebhookPlatform] = {
    CyberbizPlatform.name: CyberbizPlatform(),
    BentoWebPlatform.name: BentoWebPlatform(),
    StandardPlatform.name: StandardPlatform(),
}
_CLIENTS: dict[str, Callable[[ShopConfig, httpx.AsyncClient], PlatformClient]] = {
    CyberbizPlatform.name: CyberbizClient,
    BentoWebPlatform.name: BentoWebClient,
    StandardPlatform.name: StandardClient,
}

NAMES = tuple(_PLATFORMS)


def get_platform(name: str) -> WebhookPlatform:
    """The webhook side of a platform (stateless, shared)."""
    try:
        return _PLATFORMS[name]
    except KeyError:
        raise ConfigError("platform", f"unknown platform {name!r}") from None


def client_for(shop: ShopConfig, http: httpx.AsyncClient) -> PlatformClient:
    """A write-API client for ``shop``; ``http`` is owned (and closed) by the caller."""
    try:
        factory = _CLIENTS[shop.platform]
    except KeyError:
        where = f"shops.{shop.id}.platform"
        raise ConfigError(where, f"unknown platform {shop.platform!r}") from None
    return factory(shop, http)


__all__ = ["NAMES", "client_for", "get_platform"]
