"""The platforms the bridge speaks, by name. Built-in ones are registered by ``bridge.platforms``.

Everything outside ``bridge/platforms/`` learns platform facts here: which names exist, a shop's
webhook side and API client, the target fields all platforms declare, the headers to redact (told
to :func:`bridge.log.also_redact` on registration).
"""

from __future__ import annotations

import httpx

from bridge import log
from bridge.errors import ConfigError
from bridge.platforms.base import Platform, PlatformClient, WebhookPlatform
from bridge.settings import ShopConfig
from bridge.targets import TargetCodec, TargetField

_PLATFORMS: dict[str, Platform] = {}
_codec: dict[str, TargetCodec] = {}  # the union of every platform's fields, once computed


def register(plugin: Platform) -> None:
    """Add a platform; its target fields must agree with every other platform's (name ↔ kind)."""
    if plugin.name in _PLATFORMS:
        raise ValueError(f"platform {plugin.name!r} is already registered")
    if plugin.webhooks.name != plugin.name:
        raise ValueError(f"platform {plugin.name!r} has webhooks of {plugin.webhooks.name!r}")
    fields = [f for p in _PLATFORMS.values() for f in p.targets.fields]
    merged = {f.name: f for f in fields}
    for new in plugin.targets.fields:
        old = merged.get(new.name)
        if old is not None and old.kind != new.kind:
            raise ValueError(f"target field {new.name!r} is already kind {old.kind!r}")
        merged.setdefault(new.name, new)
    TargetCodec(merged.values())  # one field per kind, across platforms
    _PLATFORMS[plugin.name] = plugin
    _codec.clear()
    log.also_redact(f"platform:{plugin.name}", plugin.secret_headers)


def unregister(name: str) -> None:
    """Remove a platform (tests that register their own)."""
    _PLATFORMS.pop(name, None)
    _codec.clear()
    log.also_redact(f"platform:{name}", ())


def names() -> tuple[str, ...]:
    return tuple(_PLATFORMS)


def get(name: str) -> Platform:
    """The registered platform ``name``; ConfigError when there is none."""
    try:
        return _PLATFORMS[name]
    except KeyError:
        raise ConfigError("platform", f"unknown platform {name!r}") from None


def get_platform(name: str) -> WebhookPlatform:
    """The webhook side of a platform (stateless, shared)."""
    return get(name).webhooks


def client_for(shop: ShopConfig, http: httpx.AsyncClient) -> PlatformClient:
    """An API client for ``shop``; ``http`` is owned (and closed) by the caller."""
    plugin = _PLATFORMS.get(shop.platform)
    if plugin is None:
        where = f"shops.{shop.id}.platform"
        raise ConfigError(where, f"unknown platform {shop.platform!r}")
    return plugin.client(shop, http)


def target_codec() -> TargetCodec:
    """Every target field any platform declares (commands and outbox rows name any of them)."""
    codec = _codec.get("all")
    if codec is None:
        fields: dict[str, TargetField] = {}
        for plugin in _PLATFORMS.values():
            for f in plugin.targets.fields:
                fields.setdefault(f.name, f)
        codec = _codec["all"] = TargetCodec(fields.values())
    return codec


def owners_of(field_name: str) -> list[str]:
    """Titles of the platforms that accept target field ``field_name``."""
    return [p.title for p in _PLATFORMS.values() if p.targets.field(field_name) is not None]
