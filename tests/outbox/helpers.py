"""Helpers shared by the outbox tests."""

from __future__ import annotations

from typing import Any

from bridge.outbox import AddResult, NewWrite, OutboxStore

T0 = 1_700_000_000.0  # every test passes `now` explicitly; nothing sleeps


def write(
    target: str,
    key: str,
    *,
    shop: str = "shop-a",
    kind: str = "set_stock",
    payload: dict[str, Any] | None = None,
    supersedes: bool | None = None,
    priority: int = 0,
) -> NewWrite:
    """A write; set_stock supersedes unless told otherwise (as the commands consumer does)."""
    superseding = kind == "set_stock" if supersedes is None else supersedes
    return NewWrite(shop, kind, target, payload or {"quantity": 1}, key, superseding, priority)


async def add(store: OutboxStore, *writes: NewWrite, now: float = T0) -> list[AddResult]:
    """Add writes in one committed transaction."""
    async with store.transaction() as tx:
        return [await tx.add(w, now) for w in writes]
