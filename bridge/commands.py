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

from bridge import platforms
from bridge.errors import BridgeError, PlatformError
from bridge.outbox.store import SET_STOCK, NewWrite
from bridge.targets import PRODUCT_FIELD, StockTarget, TargetError

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
    return target.key


def to_write(command: SetStock) -> NewWrite:
    target = command.target
    payload: dict[str, Any] = {"command_id": command.id, "quantity": command.quantity}
    payload.update(platforms.target_codec().encode(target))
    return NewWrite(
        shop=command.shop,
        kind=SET_STOCK,
        target=target.key,
        payload=payload,
        idempotency_key=command.idempotency_key,
        supersedes=True,  # only the latest stock level of a target matters
    )


def target_of(payload: Mapping[str, Any]) -> StockTarget:
    """The StockTarget stored in a set_stock outbox payload by :func:`to_write`.

    A payload without one valid target cannot be sent, ever: a non-retryable PlatformError.
    """
    codec = platforms.target_codec()
    values = {name: payload.get(name) for name in (*codec.names, PRODUCT_FIELD)}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        raise PlatformError("set_stock payload: a target id is not a string", retryable=False)
    try:
        return codec.parse(values)
    except TargetError as exc:
        raise PlatformError(f"set_stock payload: target {exc}", retryable=False) from None


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
    target = _target(data.get("target"))
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
    return SetStock(command_id, shop, target, quantity, key)


def _target(raw: Any) -> StockTarget:
    """``{<target field>: id, "product"?: id}`` with the fields the platforms declare."""
    if not isinstance(raw, dict):
        raise InvalidCommand("target must be an object")
    codec = platforms.target_codec()
    allowed = (*codec.names[:1], PRODUCT_FIELD, *codec.names[1:])
    if set(raw) - set(allowed):
        raise InvalidCommand(f"target may hold only {', '.join(allowed)}")
    values = {name: _id(raw.get(name), f"target.{name}", required=False) for name in allowed}
    try:
        return codec.parse(values)
    except TargetError as exc:
        raise InvalidCommand(f"target {exc}") from None
