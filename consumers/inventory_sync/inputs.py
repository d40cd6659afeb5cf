"""From a decoded Kafka record to the core inputs it means for the sync groups. Pure.

A canonical variant event (``commerce.variants``) of a shop whose ``stock_source`` is ``levels``
is one observed level; an order event (``commerce.orders``) of an ``orders`` shop is one input per
synced variant it names. Everything else (variants outside every group, the other source, events
without a stock level, malformed values) maps to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from consumers.inventory_sync.directory import Directory, Member
from consumers.inventory_sync.orders import OrderAction

ORDER_ACTIONS: Mapping[str, OrderAction] = {
    "created": OrderAction.CREATED,
    "paid": OrderAction.PAID,
    "cancelled": OrderAction.CANCELLED,
    "returned": OrderAction.RETURNED,
}


@dataclass(frozen=True, slots=True)
class Level:
    """A level observed from the platform; ``previous`` when the platform sent the old one."""

    member: Member
    level: int
    previous: int | None
    position: str
    seen_at: float | None = None  # when the webhook reached the ingress (Unix seconds)


@dataclass(frozen=True, slots=True)
class OrderLines:
    """One order event's units of one synced variant (lines of that variant summed)."""

    member: Member
    order_id: str
    variant: str
    action: OrderAction
    quantity: int
    position: str

    @property
    def line_key(self) -> str:
        """Where the core's order-line bookkeeping is stored: ``{shop}/{order}/{variant}``."""
        return f"{self.member.shop}/{self.order_id}/{self.variant}"


Input = Level | OrderLines


def inputs_of(record: Record, topics: Topics, directory: Directory) -> list[Input]:
    """The inputs ``record`` means for the sync groups (often none)."""
    value = record.value
    if not isinstance(value, dict):
        return []
    shop = value.get("shop")
    if not isinstance(shop, str):
        return []
    if record.topic == topics.variants:
        level = _level(value, shop, directory, record.position)
        return [] if level is None else [level]
    if record.topic == topics.orders:
        return _orders(value, shop, directory, record.position)
    return []


def _level(value: dict[str, Any], shop: str, directory: Directory, position: str) -> Level | None:
    variant = value.get("variant_id")
    if not isinstance(variant, str):
        return None
    member = directory.for_variant(shop, variant)
    if member is None or member.orders:
        return None
    level = _int(value.get("inventory_quantity"))
    if level is None:
        return None
    previous = _int(value.get("previous_quantity"))
    return Level(member, level, previous, position, _seen_at(value.get("received_at")))


def _seen_at(value: Any) -> float | None:
    """``received_at`` (RFC 3339) as Unix seconds; None when absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _orders(value: dict[str, Any], shop: str, directory: Directory, position: str) -> list[Input]:
    action = ORDER_ACTIONS.get(_action(value))
    order_id = value.get("order_id")
    lines = value.get("line_items")
    if action is None or not isinstance(order_id, str) or not isinstance(lines, list):
        return []
    units: dict[str, tuple[Member, int]] = {}
    for line in lines:
        if not isinstance(line, dict) or not isinstance(line.get("variant_id"), str):
            continue
        variant: str = line["variant_id"]
        member = directory.for_variant(shop, variant)
        quantity = _int(line.get("quantity"))
        if member is None or not member.orders or quantity is None or quantity < 0:
            continue
        _, before = units.get(variant, (member, 0))
        units[variant] = (member, before + quantity)
    return [
        OrderLines(member, order_id, variant, action, quantity, position)
        for variant, (member, quantity) in sorted(units.items())
    ]


def _action(value: dict[str, Any]) -> str:
    kind = value.get("type")
    if isinstance(kind, str) and kind.startswith("commerce.order."):
        return kind.removeprefix("commerce.order.")
    return ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
