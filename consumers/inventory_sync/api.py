"""The platform API reads inventory sync needs: a member's real level, a platform group's variants.

The one seam between this app and the platform clients: reconcile reads levels through
``get_stock``; a platform's own sync groups are looked up through ``get_sync_group`` /
``list_sync_groups`` (start-up, ``commerce-bridge sync-groups pull``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bridge.errors import PlatformError
from bridge.platforms.base import StockTarget


@runtime_checkable
class StockReader(Protocol):
    async def get_stock(self, target: StockTarget) -> int: ...


@runtime_checkable
class GroupLister(Protocol):
    async def list_sync_groups(self) -> list[dict[str, Any]]: ...

    async def get_sync_group(self, group_id: str) -> dict[str, Any]: ...


async def read_level(client: object, shop: str, target: StockTarget) -> int:
    """The level the platform holds for ``target`` now; PlatformError when it cannot say."""
    if not isinstance(client, StockReader):
        raise PlatformError(f"the API client of shop {shop!r} cannot read stock", retryable=False)
    return await client.get_stock(target)


async def group_variants(client: object, shop: str, group_id: str) -> list[str]:
    """The variant ids in one of the platform's own sync groups of ``shop``."""
    return variant_ids(await _lister(client, shop).get_sync_group(group_id))


async def list_groups(client: object, shop: str) -> list[tuple[str, list[str]]]:
    """Every inventory sync group of ``shop``: ``(group id, variant ids)``, by id."""
    found = []
    for group in await _lister(client, shop).list_sync_groups():
        ident = group.get("id")
        if isinstance(ident, str | int) and not isinstance(ident, bool):
            found.append((str(ident), variant_ids(group)))
    return sorted(found)


def variant_ids(group: Mapping[str, Any]) -> list[str]:
    """``variants[].product_variant_id`` (or ``id``) of a platform sync group document."""
    variants = group.get("variants", group.get("product_variants"))
    if not isinstance(variants, Sequence) or isinstance(variants, str):
        return []
    ids = []
    for v in variants:
        raw = v.get("product_variant_id", v.get("id")) if isinstance(v, Mapping) else v
        if isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw):
            ids.append(str(raw))
    return ids


def _lister(client: object, shop: str) -> GroupLister:
    if not isinstance(client, GroupLister):
        raise PlatformError(f"shop {shop!r} has no inventory sync groups", retryable=False)
    return client
