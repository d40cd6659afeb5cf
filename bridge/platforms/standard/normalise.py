"""Standard Webhooks bodies → canonical events.

The body is ``{"type": "<entity>.<verb>", "timestamp": "<ISO 8601>", "data": {...}}`` and ``data``
uses the canonical field names: ``id``, and per entity —
order: ``number``, ``status``, ``financial_status``, ``fulfillment_status``, ``return_status``,
``currency``, ``total``, ``subtotal``, ``shipping``, ``line_items[{id, product_id, variant_id, sku,
title, quantity, price}]``, ``created_at``, ``updated_at``, ``cancelled_at``, ``paid_at``;
variant: ``product_id``, ``sku``, ``title``, ``price``, ``inventory_quantity``,
``previous_quantity``, ``inventory_managed``, ``active``, ``updated_at``; product: ``title``,
``active``, ``price``, ``inventory_quantity``, ``variants[...]``, ``created_at``, ``updated_at``;
customer: ``created_at``, ``updated_at`` (everything else is PII). Times without an offset are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.errors import UnknownEvent
from bridge.events import CanonicalEvent, body_digest
from bridge.platforms._common import (
    action_for,
    all_keys_except,
    array,
    customer_fields,
    envelope,
    flag,
    ident,
    line_item_fields,
    money,
    obj,
    opt_ident,
    order_fields,
    other_fields,
    product_fields,
    quantity,
    text,
    timestamp,
    variant_fields,
)
from bridge.platforms.base import Delivery
from bridge.platforms.standard.webhooks import EVENT_TYPE, ID_HEADERS, NAME, header
from bridge.privacy import Privacy

NOUNS = {
    "order": "order", "orders": "order",
    "variant": "variant", "variants": "variant", "product_variant": "variant",
    "product": "product", "products": "product",
    "customer": "customer", "customers": "customer",
}  # fmt: skip
ORDER_PII = (
    "data.customer", "data.billing_address", "data.shipping_address", "data.email",
    "data.phone", "data.name", "data.note",
)  # fmt: skip
CUSTOMER_KEEP = ("id", "created_at", "updated_at")


PII_PATHS = {"order": ORDER_PII}


def normalise(delivery: Delivery, event: str, payload: Any, privacy: Privacy) -> CanonicalEvent:
    if not EVENT_TYPE.fullmatch(event):
        raise UnknownEvent(f"not an event type: {event[:60]!r}")
    noun, verb = event.split(".")[0], event.rsplit(".", 1)[1]
    entity = NOUNS.get(noun, "other")
    body = obj(payload, "body")
    data = obj(body.get("data"), "data")
    pii: tuple[Any, ...] = ()
    if entity == "order":
        entity_id, fields = _order(data)
        pii = ORDER_PII
    elif entity == "variant":
        fields = _variant(data, None, "data.")
        entity_id = fields["variant_id"]
    elif entity == "product":
        entity_id, fields = _product(data)
    elif entity == "customer":
        entity_id = ident(data.get("id"), "data.id")
        fields = customer_fields(
            customer_id=entity_id,
            created_at=_time(data, "created_at"),
            updated_at=_time(data, "updated_at"),
        )
        pii = all_keys_except(body, CUSTOMER_KEEP, ("data",))
    else:
        object_id = opt_ident(data.get("id"), "data.id")
        entity_id = object_id or noun
        fields = other_fields(resource=noun, object_id=object_id)
        pii = all_keys_except(body, CUSTOMER_KEEP, ("data",))
    occurred = (
        _time(data, "updated_at")
        or _time(data, "created_at")
        or timestamp(body.get("timestamp"), "timestamp", UTC)
    )
    msg_id = header(delivery, ID_HEADERS)
    return envelope(
        delivery=delivery,
        platform=NAME,
        event=event,
        entity=entity,
        action=action_for(verb),
        entity_id=entity_id,
        delivery_key=msg_id or body_digest(delivery.body),
        occurred_at=occurred,
        payload=payload,
        pii_paths=pii,
        privacy=privacy,
        fields=fields,
    )


def _time(data: dict[str, Any], field: str, at: str = "data.") -> datetime | None:
    return timestamp(data.get(field), at + field, UTC)


def _order(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    order_id = ident(data.get("id"), "data.id")
    lines = []
    for i, raw in enumerate(array(data.get("line_items"), "data.line_items")):
        at = f"data.line_items[{i}]."
        item = obj(raw, at[:-1])
        lines.append(
            line_item_fields(
                line_id=opt_ident(item.get("id"), at + "id"),
                product_id=opt_ident(item.get("product_id"), at + "product_id"),
                variant_id=opt_ident(item.get("variant_id"), at + "variant_id"),
                sku=text(item.get("sku"), at + "sku"),
                title=text(item.get("title"), at + "title"),
                quantity=quantity(item.get("quantity"), at + "quantity"),
                price=money(item.get("price"), at + "price"),
            )
        )
    return order_id, order_fields(
        order_id=order_id,
        number=text(data.get("number"), "data.number"),
        status=text(data.get("status"), "data.status"),
        financial_status=text(data.get("financial_status"), "data.financial_status"),
        fulfillment_status=text(data.get("fulfillment_status"), "data.fulfillment_status"),
        return_status=text(data.get("return_status"), "data.return_status"),
        currency=text(data.get("currency"), "data.currency"),
        total=money(data.get("total"), "data.total"),
        subtotal=money(data.get("subtotal"), "data.subtotal"),
        shipping=money(data.get("shipping"), "data.shipping"),
        line_items=lines,
        created_at=_time(data, "created_at"),
        updated_at=_time(data, "updated_at"),
        cancelled_at=_time(data, "cancelled_at"),
        paid_at=_time(data, "paid_at"),
    )


def _variant(data: dict[str, Any], product_id: str | None, at: str) -> dict[str, Any]:
    return variant_fields(
        variant_id=ident(data.get("id"), at + "id"),
        product_id=opt_ident(data.get("product_id"), at + "product_id") or product_id,
        sku=text(data.get("sku"), at + "sku"),
        title=text(data.get("title"), at + "title"),
        price=money(data.get("price"), at + "price"),
        inventory_quantity=quantity(data.get("inventory_quantity"), at + "inventory_quantity"),
        previous_quantity=quantity(data.get("previous_quantity"), at + "previous_quantity"),
        inventory_managed=flag(data.get("inventory_managed"), at + "inventory_managed"),
        active=flag(data.get("active"), at + "active"),
        updated_at=_time(data, "updated_at", at),
    )


def _product(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product_id = ident(data.get("id"), "data.id")
    variants = [
        _variant(obj(raw, f"data.variants[{i}]"), product_id, f"data.variants[{i}].")
        for i, raw in enumerate(array(data.get("variants"), "data.variants"))
    ]
    return product_id, product_fields(
        product_id=product_id,
        title=text(data.get("title"), "data.title"),
        active=flag(data.get("active"), "data.active"),
        price=money(data.get("price"), "data.price"),
        inventory_quantity=quantity(data.get("inventory_quantity"), "data.inventory_quantity"),
        variants=variants,
        created_at=_time(data, "created_at"),
        updated_at=_time(data, "updated_at"),
    )
