"""Cyberbiz webhook bodies → canonical events (orders, variants, products, customers, other).

Times are ``YYYY-MM-DD HH:MM:SS`` in Asia/Taipei; order lines name ``product_variant_id``;
``variants/update`` carries ``inventory_quantity`` (there is no inventory event).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.errors import UnknownEvent
from bridge.events import CanonicalEvent, body_digest
from bridge.platforms._common import (
    TAIPEI,
    action_for,
    all_keys_except,
    array,
    content_digest,
    customer_fields,
    envelope,
    flag,
    ident,
    line_item_fields,
    money,
    obj,
    opt_ident,
    opt_obj,
    order_fields,
    other_fields,
    product_fields,
    quantity,
    text,
    timestamp,
    variant_fields,
)
from bridge.platforms.base import Delivery
from bridge.platforms.cyberbiz.webhooks import NAME, RESOURCES
from bridge.privacy import Privacy

# Where customer PII sits in an order body (top-level keys).
ORDER_PII = (
    "customer", "buyer", "receiver", "billing_address", "shipping_address", "einvoice",
    "card4no", "note", "email", "phone", "mobile", "browser_ip",
)  # fmt: skip
# Customers (and unmapped resources, which may hold anything) are PII except these keys.
CUSTOMER_KEEP = ("id", "created_at", "updated_at")
OTHER_KEEP = ("id", "created_at", "updated_at")


PII_PATHS = {"order": ORDER_PII}


def normalise(delivery: Delivery, event: str, payload: Any, privacy: Privacy) -> CanonicalEvent:
    resource, _, verb = event.partition("/")
    entity = RESOURCES.get(resource)
    if entity is None:
        raise UnknownEvent(f"not a Cyberbiz event: {event[:60]!r}")
    body = obj(payload, "body")
    if entity == "order":
        entity_id, fields = _order(body)
        pii: tuple[Any, ...] = ORDER_PII
    elif entity == "variant":
        fields = _variant(body, None)
        entity_id, pii = fields["variant_id"], ()
    elif entity == "product":
        entity_id, fields = _product(body)
        pii = ()
    elif entity == "customer":
        entity_id = ident(body.get("id"), "id")
        fields = customer_fields(
            customer_id=entity_id,
            created_at=_time(body, "created_at"),
            updated_at=_time(body, "updated_at"),
        )
        pii = all_keys_except(body, CUSTOMER_KEEP)
    else:
        object_id = opt_ident(body.get("id"), "id")
        entity_id = object_id or resource
        fields = other_fields(resource=resource, object_id=object_id)
        pii = all_keys_except(body, OTHER_KEEP)
    updated = _time(body, "updated_at")
    if updated is None:
        key = body_digest(delivery.body)
    else:
        # (id, updated_at) as the facts advise, plus the normalised content: updated_at has
        # one-second resolution, and two stock changes within that second must both count.
        key = f"{entity_id}|{body['updated_at']}|{content_digest(fields)}"
    return envelope(
        delivery=delivery,
        platform=NAME,
        event=event,
        entity=entity,
        action=action_for(verb),
        entity_id=entity_id,
        delivery_key=key,
        occurred_at=updated or _time(body, "created_at"),
        payload=payload,
        pii_paths=pii,
        privacy=privacy,
        fields=fields,
    )


def _time(body: dict[str, Any], field: str) -> datetime | None:
    return timestamp(body.get(field), field, TAIPEI)


def _order(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    order_id = ident(body.get("id"), "id")
    statuses = opt_obj(body.get("statuses"), "statuses")
    prices = opt_obj(body.get("prices"), "prices")
    lines = []
    for i, raw in enumerate(array(body.get("line_items"), "line_items")):
        item = obj(raw, f"line_items[{i}]")
        at = f"line_items[{i}]."
        lines.append(
            line_item_fields(
                line_id=opt_ident(item.get("id"), at + "id"),
                product_id=opt_ident(item.get("product_id"), at + "product_id"),
                variant_id=opt_ident(item.get("product_variant_id"), at + "product_variant_id"),
                sku=text(item.get("sku"), at + "sku"),
                title=text(item.get("title"), at + "title"),
                quantity=quantity(item.get("quantity"), at + "quantity"),
                price=money(item.get("price"), at + "price"),
            )
        )
    return order_id, order_fields(
        order_id=order_id,
        number=text(body.get("order_number"), "order_number"),
        status=text(statuses.get("order_status"), "statuses.order_status"),
        financial_status=text(statuses.get("financial_status"), "statuses.financial_status"),
        fulfillment_status=text(statuses.get("fulfillment_status"), "statuses.fulfillment_status"),
        return_status=text(statuses.get("return_status"), "statuses.return_status"),
        currency=text(body.get("currency"), "currency"),
        total=money(prices.get("total_price"), "prices.total_price"),
        subtotal=money(prices.get("total_line_items_price"), "prices.total_line_items_price"),
        shipping=money(prices.get("shipping_rate_price"), "prices.shipping_rate_price"),
        line_items=lines,
        created_at=_time(body, "created_at"),
        updated_at=_time(body, "updated_at"),
        cancelled_at=_time(body, "cancelled_at"),
        paid_at=_time(body, "paid_at"),
    )


def _managed(value: Any) -> bool | None:
    """``inventory_management`` is documented as a boolean; a tracker name also means "yes"."""
    if isinstance(value, str) and value not in ("", "0", "1", "true", "false"):
        return True
    return flag(value, "inventory_management")


def _variant(body: dict[str, Any], product_id: str | None, at: str = "") -> dict[str, Any]:
    return variant_fields(
        variant_id=ident(body.get("id"), at + "id"),
        product_id=opt_ident(body.get("product_id"), at + "product_id") or product_id,
        sku=text(body.get("sku"), at + "sku"),
        title=text(body.get("title"), at + "title"),
        price=money(body.get("price"), at + "price"),
        inventory_quantity=quantity(body.get("inventory_quantity"), at + "inventory_quantity"),
        inventory_managed=_managed(body.get("inventory_management")),
        updated_at=timestamp(body.get("updated_at"), at + "updated_at", TAIPEI),
    )


def _product(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product_id = ident(body.get("id"), "id")
    variants = [
        _variant(obj(raw, f"product_variants[{i}]"), product_id, f"product_variants[{i}].")
        for i, raw in enumerate(array(body.get("product_variants"), "product_variants"))
    ]
    return product_id, product_fields(
        product_id=product_id,
        title=text(body.get("title"), "title"),
        active=flag(body.get("published"), "published"),
        price=None,
        inventory_quantity=None,
        variants=variants,
        created_at=_time(body, "created_at"),
        updated_at=_time(body, "updated_at"),
    )
