"""Pure helpers shared by the platform modules: field coercion and the canonical envelope.

Every coercion raises :class:`InvalidPayload` naming the field, never anything else, so that a
malformed webhook becomes a 400 and not a 500. Field *names* stay in the platform modules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

from bridge.errors import InvalidPayload
from bridge.events import CanonicalEvent, event_id
from bridge.platforms.base import Delivery
from bridge.privacy import Path, PiiPath, Privacy
from bridge.times import rfc3339

BANGKOK = timezone(timedelta(hours=7), "Asia/Bangkok")  # no DST

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 2000
MAX_QUANTITY = 2**31 - 1
MAX_MONEY = Decimal(10) ** 15  # exclusive; larger amounts are not a shop's, they are an error
MONEY_PLACES = 6
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
_MONEY_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
# Already in the form money() returns (no sign, no leading zero, at most six places, < 10^15):
# returned as it is, without a Decimal round trip.
_CANONICAL_MONEY = re.compile(r"(?:0|[1-9]\d{0,14})(?:\.\d{1,6})?")
_LOCAL_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?")
_ZERO_DATES = ("0000-00-00", "-0001-11-30")
TIME_CACHE = 4096  # distinct platform times remembered (parsed and rendered)

# Platform verbs → canonical action (the last part of ``ce_type``).
ACTIONS: Mapping[str, str] = {
    "create": "created", "created": "created", "new": "created", "add": "created",
    "update": "updated", "updated": "updated", "edit": "updated",
    "delete": "deleted", "deleted": "deleted", "destroy": "deleted", "remove": "deleted",
    "paid": "paid", "pay": "paid",
    "cancel": "cancelled", "cancelled": "cancelled", "canceled": "cancelled",
    "return": "returned", "returned": "returned",
    "partial_return": "partially_returned", "partially_returned": "partially_returned",
    "refund": "refunded", "refunded": "refunded",
    "partial_refund": "partially_refunded", "partially_refunded": "partially_refunded",
    "close": "closed", "closed": "closed",
    "fulfill": "fulfilled", "fulfilled": "fulfilled",
    "uninstall": "uninstalled", "uninstalled": "uninstalled",
}  # fmt: skip


def content_digest(fields: Mapping[str, Any]) -> str:
    """A short digest of normalised fields: equal for the same content however it was encoded."""
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def action_for(verb: str) -> str:
    """Canonical action of a platform verb; an unknown verb means "the entity changed"."""
    return ACTIONS.get(verb, "updated")


# -- structure ---------------------------------------------------------------------------------


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPayload(f"{field}: expected an object, got {_kind(value)}")
    return value


def opt_obj(value: Any, field: str) -> dict[str, Any]:
    """An object, or ``{}`` when the field is null/absent."""
    return {} if value is None else obj(value, field)


def array(value: Any, field: str) -> list[Any]:
    """A list; ``None`` counts as empty (platforms send null for "none")."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidPayload(f"{field}: expected a list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message (never PII-sized)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return "a huge integer"
    if isinstance(value, dict | list):
        return f"a {_kind(value)}"
    return repr(value)[:40]


# -- scalars -----------------------------------------------------------------------------------


def ident(value: Any, field: str) -> str:
    """A required id: a non-negative integer or a non-empty string, returned as a string."""
    result = opt_ident(value, field)
    if result is None:
        raise InvalidPayload(f"{field}: id is missing")
    return result


def opt_ident(value: Any, field: str) -> str | None:
    """An optional id; ``None``, ``""`` and ``0`` (BentoWeb's "none") become ``None``."""
    if value is None or value == "" or (isinstance(value, int) and value == 0):
        return None
    if isinstance(value, bool):
        raise InvalidPayload(f"{field}: expected an id, got a boolean")
    if isinstance(value, int):
        if value < 0 or value > 2**63 - 1:
            raise InvalidPayload(f"{field}: id is out of range")
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > MAX_ID_LENGTH or not text.isprintable():
            raise InvalidPayload(f"{field}: not a usable id")
        return text
    raise InvalidPayload(f"{field}: expected an id, got {_kind(value)}")


def text(value: Any, field: str) -> str | None:
    """Optional free text (titles, SKUs, status names); numbers are accepted as their digits."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidPayload(f"{field}: expected text, got a boolean")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise InvalidPayload(f"{field}: expected text, got {_kind(value)}")
    return value[:MAX_TEXT_LENGTH]


def flag(value: Any, field: str) -> bool | None:
    """A boolean sent as ``true``/``false``, ``0``/``1`` or ``"0"``/``"1"``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in ("0", "1", "true", "false"):
        return value in ("1", "true")
    raise InvalidPayload(f"{field}: expected a boolean, got {_show(value)}")


def quantity(value: Any, field: str) -> int | None:
    """An integer count (stock, quantity); integral floats and digit strings are accepted."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidPayload(f"{field}: expected an integer, got a boolean")
    result: int
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise InvalidPayload(f"{field}: expected an integer, got {_show(value)}")
        if abs(value) > MAX_QUANTITY:
            raise InvalidPayload(f"{field}: {_show(value)} is out of range")
        result = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,12}", value.strip()):
        result = int(value)
    else:
        raise InvalidPayload(f"{field}: expected an integer, got {_show(value)}")
    if abs(result) > MAX_QUANTITY:
        raise InvalidPayload(f"{field}: quantity is out of range")
    return result


def money(value: Any, field: str) -> str | None:
    """A decimal string from a float, integer or numeric string (``199.5`` → ``"199.5"``).

    ``Decimal(str(x))`` keeps what the platform meant, not the float's binary expansion; more than
    six decimal places are rounded half-even (``0.30000000000000004`` → ``"0.3"``); ``-0`` is
    ``0``; an amount of 10^15 or more is invalid.
    """
    if isinstance(value, str) and _CANONICAL_MONEY.fullmatch(value):
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidPayload(f"{field}: expected an amount, got a boolean")
    if isinstance(value, int) and abs(value) >= MAX_MONEY:
        raise InvalidPayload(f"{field}: amount is out of range")
    if isinstance(value, int | float):
        raw = str(value)
    elif isinstance(value, str) and _MONEY_TEXT.fullmatch(value.strip()):
        raw = value.strip()
    else:
        raise InvalidPayload(f"{field}: expected an amount, got {_show(value)}")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise InvalidPayload(f"{field}: expected an amount, got {_show(value)}") from None
    if not amount.is_finite() or abs(amount) >= MAX_MONEY:
        raise InvalidPayload(f"{field}: amount {raw:.40} is out of range")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES:
        amount = amount.quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_EVEN).normalize()
    if amount == 0:
        amount = abs(amount)
    return format(amount, "f")


def timestamp(value: Any, field: str, local: tzinfo) -> datetime | None:
    """A platform time as an aware UTC datetime, or ``None`` for null/empty/zero dates.

    ``YYYY-MM-DD HH:MM:SS`` without an offset is in the platform's ``local`` zone; ISO 8601 with
    an offset or ``Z`` is honoured as given.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidPayload(f"{field}: expected a date-time string, got {_kind(value)}")
    stripped = value.strip()
    if stripped.startswith(_ZERO_DATES):
        return None
    moment = _parse_time(stripped, local)
    if isinstance(moment, str):
        raise InvalidPayload(f"{field}: {moment}: {_show(value)}")
    return moment


@lru_cache(maxsize=TIME_CACHE)
def _parse_time(text: str, local: tzinfo) -> datetime | str:
    """``text`` as an aware UTC datetime, or what is wrong with it.

    Cached: the times of one order (created, paid, modified within a second) recur across its
    webhooks; the cache is bounded, not by traffic.
    """
    if _LOCAL_TIME.match(text) is None:
        return "not a date-time"
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=local)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return "not a valid date-time"


@lru_cache(maxsize=TIME_CACHE)
def _utc_text(moment: datetime | None) -> str | None:
    """:func:`rfc3339` of a platform time (cached alongside :func:`_parse_time`)."""
    return rfc3339(moment)


# -- the canonical event -----------------------------------------------------------------------


def envelope(
    *,
    delivery: Delivery,
    platform: str,
    event: str,
    entity: str,
    action: str,
    entity_id: str,
    delivery_key: str,
    occurred_at: datetime | None,
    payload: Any,
    pii_paths: Sequence[PiiPath],
    privacy: Privacy,
    fields: Mapping[str, Any],
) -> CanonicalEvent:
    """The canonical event: common fields, then the entity's, then ``raw`` with PII protected."""
    shop = delivery.shop.id
    ce_id = event_id(shop, event, delivery_key)
    moment = occurred_at or delivery.received_at
    raw = privacy.protect(payload, pii_paths)
    value: dict[str, Any] = {
        "schema": f"{entity}.v1",
        "id": ce_id,
        "platform": platform,
        "shop": shop,
        "event": event,
        "type": f"commerce.{entity}.{action}",
        "occurred_at": _utc_text(moment) if occurred_at else rfc3339(moment),
        "received_at": rfc3339(delivery.received_at),
        **fields,
        "raw": raw,
    }
    return CanonicalEvent(
        id=ce_id,
        platform=platform,
        shop=shop,
        entity=entity,
        action=action,
        entity_id=entity_id,
        time=moment.astimezone(UTC),
        value=value,
    )


# -- entity field sets (one place, so every platform emits the same keys) ----------------------


def variant_fields(
    *,
    variant_id: str,
    product_id: str | None,
    sku: str | None,
    title: str | None,
    price: str | None,
    inventory_quantity: int | None,
    previous_quantity: int | None = None,
    inventory_managed: bool | None = None,
    active: bool | None = None,
    updated_at: datetime | None = None,
) -> dict[str, Any]:
    """Canonical variant fields; ``stock_delta`` is derived when both stock values are known."""
    delta = (
        inventory_quantity - previous_quantity
        if inventory_quantity is not None and previous_quantity is not None
        else None
    )
    return {
        "variant_id": variant_id,
        "product_id": product_id,
        "sku": sku,
        "title": title,
        "price": price,
        "inventory_quantity": inventory_quantity,
        "previous_quantity": previous_quantity,
        "stock_delta": delta,
        "inventory_managed": inventory_managed,
        "active": active,
        "updated_at": _utc_text(updated_at),
    }


def line_item_fields(
    *,
    line_id: str | None,
    product_id: str | None,
    variant_id: str | None,
    sku: str | None,
    title: str | None,
    quantity: int | None,
    price: str | None,
) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "product_id": product_id,
        "variant_id": variant_id,
        "sku": sku,
        "title": title,
        "quantity": quantity,
        "price": price,
    }


def order_fields(
    *,
    order_id: str,
    number: str | None,
    status: str | None,
    financial_status: str | None,
    fulfillment_status: str | None,
    return_status: str | None,
    currency: str | None,
    total: str | None,
    subtotal: str | None,
    shipping: str | None,
    line_items: list[dict[str, Any]],
    created_at: datetime | None,
    updated_at: datetime | None,
    cancelled_at: datetime | None,
    paid_at: datetime | None,
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "number": number,
        "status": status,
        "financial_status": financial_status,
        "fulfillment_status": fulfillment_status,
        "return_status": return_status,
        "currency": currency,
        "total": total,
        "subtotal": subtotal,
        "shipping": shipping,
        "line_items": line_items,
        "created_at": _utc_text(created_at),
        "updated_at": _utc_text(updated_at),
        "cancelled_at": _utc_text(cancelled_at),
        "paid_at": _utc_text(paid_at),
    }


def product_fields(
    *,
    product_id: str,
    title: str | None,
    active: bool | None,
    price: str | None,
    inventory_quantity: int | None,
    variants: list[dict[str, Any]],
    created_at: datetime | None,
    updated_at: datetime | None,
) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "title": title,
        "active": active,
        "price": price,
        "inventory_quantity": inventory_quantity,
        "variants": variants,
        "created_at": _utc_text(created_at),
        "updated_at": _utc_text(updated_at),
    }


def customer_fields(
    *, customer_id: str, created_at: datetime | None, updated_at: datetime | None
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "created_at": _utc_text(created_at),
        "updated_at": _utc_text(updated_at),
    }


def other_fields(*, resource: str, object_id: str | None) -> dict[str, Any]:
    return {"resource": resource, "object_id": object_id}


def all_keys_except(payload: Any, keep: Sequence[str], prefix: Path = ()) -> tuple[Path, ...]:
    """PII paths for "everything under ``prefix`` but these keys" (customers, unmapped resources).

    Pre-split tuples, so that keys containing dots are covered too.
    """
    node = payload
    for segment in prefix:
        node = node.get(segment) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return ()
    return tuple((*prefix, key) for key in node if key not in keep)
