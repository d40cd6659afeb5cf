"""Write commands (``schemas/command.v1.json``): parsing and their outbox representation. Pure.

A command asks the bridge to change something in a shop, e.g. set a variant's stock. Any service
may publish one to ``commerce.commands``; the inventory-sync consumer creates them directly.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.errors import BridgeError
from bridge.outbox.store import SET_STOCK, NewWrite
from bridge.platforms.base import StockTarget

KINDS = (SET_STOCK,)
MAX_QUANTITY = 2**31 - 1
_MAX_ID = 200
# Sent as the Idempotency-Key header and stored in a text column: no control character (a NUL
# fails a PostgreSQL statement), nothing outside ASCII.
_KEY = re.compile(f"[ -~]{{1,{_MAX_ID}}}")


class InvalidCommand(BridgeError):
    """A command that cannot be executed; ``reason`` goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SetStock:
    id: str
    shop: str
    target: StockTarget
    quantity: int
    idempotency_key: str


def target_key(target: StockTarget) -> str:
    """The outbox ``target`` column: one key per thing whose stock is written."""
    if target.cyberbiz_group is not None:
        return f"group:{target.cyberbiz_group}"
    return f"variant:{target.variant}"


def to_write(command: SetStock) -> NewWrite:
    target = command.target
    payload: dict[str, Any] = {"command_id": command.id, "quantity": command.quantity}
    for name in ("variant", "product", "cyberbiz_group"):
        value = getattr(target, name)
        if value is not None:
            payload[name] = value
    return NewWrite(
        shop=command.shop,
        kind=SET_STOCK,
        target=target_key(target),
        payload=payload,
        idempotency_key=command.idempotency_key,
        supersedes=True,  # only the latest stock level of a target matters
    )


def target_of(payload: Mapping[str, Any]) -> StockTarget:
    """The StockTarget stored in a set_stock outbox payload by :func:`to_write`."""
    return StockTarget(
        variant=payload.get("variant"),
        product=payload.get("product"),
        cyberbiz_group=payload.get("cyberbiz_group"),
    )


def _id(value: Any, name: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise InvalidCommand(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidCommand(f"{name} must be a string")
    text = value
    if (
        not text
        or len(text) > _MAX_ID
        or any(c in text for c in "/?#\x00\n")
        or text in {".", ".."}
    ):
        raise InvalidCommand(f"{name} must be a non-empty id without '/', '?' or '#'")
    return text


def parse_command(raw: bytes, shops: Collection[str]) -> SetStock:
    """Validate a ``commerce.commands`` record value; raise InvalidCommand with the reason."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidCommand(f"not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InvalidCommand("a command must be a JSON object")
    unknown = set(data) - {"id", "shop", "kind", "target", "payload", "idempotency_key"}
    if unknown:
        raise InvalidCommand(f"unknown field {sorted(unknown)[0]!r}")
    command_id = _id(data.get("id"), "id", required=True)
    shop = _id(data.get("shop"), "shop", required=True)
    if shop not in shops:
        raise InvalidCommand(f"unknown shop {shop!r}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise InvalidCommand(f"kind must be one of {', '.join(KINDS)}")
    target = data.get("target")
    if not isinstance(target, dict):
        raise InvalidCommand("target must be an object")
    if set(target) - {"variant", "product", "cyberbiz_group"}:
        raise InvalidCommand("target may hold only variant, product, cyberbiz_group")
    variant = _id(target.get("variant"), "target.variant", required=False)
    group = _id(target.get("cyberbiz_group"), "target.cyberbiz_group", required=False)
    if (variant is None) == (group is None):
        raise InvalidCommand("target needs exactly one of variant or cyberbiz_group")
    product = _id(target.get("product"), "target.product", required=False)
    payload = data.get("payload")
    if not isinstance(payload, dict) or set(payload) != {"quantity"}:
        raise InvalidCommand('payload must be {"quantity": <integer>}')
    quantity = payload["quantity"]
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidCommand("payload.quantity must be an integer")
    if not 0 <= quantity <= MAX_QUANTITY:
        raise InvalidCommand(f"payload.quantity must be between 0 and {MAX_QUANTITY}")
    key = data.get("idempotency_key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidCommand(f"idempotency_key must be 1 to {_MAX_ID} printable ASCII characters")
    if command_id is None or shop is None:  # pragma: no cover - required=True raised already
        raise InvalidCommand("id and shop are required")
    return SetStock(command_id, shop, StockTarget(variant, product, group), quantity, key)
