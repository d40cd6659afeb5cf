"""BentoWeb webhook bodies → canonical events (orders, variants, products).

Its times carry no zone; the shops are in Thailand, so they are read as Asia/Bangkok (UTC+7) —
an assumption, not documented by BentoWeb. Prices come as strings or numbers; zero dates
(``0000-00-00 00:00:00``, ``-0001-11-30 00:00:00``) mean "none"; orders hold PII.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.errors import UnknownEvent
from bridge.events import CanonicalEvent, body_digest
from bridge.platforms._common import (
    BANGKOK,
    array,
    envelope,
    flag,
    ident,
    line_item_fields,
    money,
    obj,
    opt_ident,
    opt_obj,
    order_fields,
    product_fields,
    quantity,
    text,
    timestamp,
    variant_fields,
)
from bridge.platforms.base import Delivery
from bridge.platforms.bentoweb.webhooks import EVENTS, NAME
from bridge.privacy import Privacy

# PII in an order (``data.order.<field>``, and the same fields in each ``sub_order``).
ORDER_PII_FIELDS = (
    "firstname", "lastname", "full_name", "email", "phone", "idcard",
    "shipping_firstname", "shipping_lastname", "shipping_email", "shipping_phone",
    "shipping_address_1", "shipping_address_2", "shipping_subdistrict", "shipping_district",
    "shipping_province", "shipping_zipcode", "shipping_gps", "shipping_ems",
    "shipping_content", "payment_content", "ip_address", "note", "special_req", "admin_note",
    "ref_code", "invoice_url", "order_billing", "order_attachment", "order_social",
    "order_line_shopping", "order_shopee_api", "order_tik_tok_shop", "shopee_api_transaction",
    "order_lazada",
)  # fmt: skip
ORDER_PII = tuple(f"data.order.{f}" for f in ORDER_PII_FIELDS) + tuple(
    f"data.order.sub_order.*.{f}" for f in ORDER_PII_FIELDS
)
PRODUCT_PII: tuple[str, ...] = ()
VARIANT_PII: tuple[str, ...] = ()


PII_PATHS = {"order": ORDER_PII, "product": PRODUCT_PII, "variant": VARIANT_PII}


def normalise(delivery: Delivery, event: str, payload: Any, privacy: Privacy) -> CanonicalEvent:
    if event not in EVENTS:
        raise UnknownEvent(f"not a BentoWeb event: {event[:60]!r}")
    entity, action = EVENTS[event]
    body = obj(payload, "body")
    if entity == "order":
        entity_id, fields = _order(body)
        pii: tuple[str, ...] = ORDER_PII
        occurred = _order_time(body)
    elif entity == "variant":
        fields = _variant(body)
        entity_id, pii, occurred = fields["variant_id"], VARIANT_PII, None
    else:
        entity_id, fields = _product(body)
        pii, occurred = PRODUCT_PII, None
    return envelope(
        delivery=delivery,
        platform=NAME,
        event=event,
        entity=entity,
        action=action,
        entity_id=entity_id,
        delivery_key=body_digest(delivery.body),  # no delivery id, no reliable updated_at
        occurred_at=occurred,
        payload=payload,
        pii_paths=pii,
        privacy=privacy,
        fields=fields,
    )


def _time(body: dict[str, Any], field: str, at: str = "") -> datetime | None:
    return timestamp(body.get(field), at + field, BANGKOK)


def _order_body(body: dict[str, Any]) -> dict[str, Any]:
    """Orders come wrapped: ``{"status": 1, "data": {"order": {...}}}``."""
    return obj(obj(body.get("data"), "data").get("order"), "data.order")


def _order_time(body: dict[str, Any]) -> datetime | None:
    order = _order_body(body)
    return _time(order, "date_modified") or _time(order, "date_created")


def _order(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    order = _order_body(body)
    at = "data.order."
    order_id = ident(order.get("order_id"), at + "order_id")
    lines = []
    for i, raw in enumerate(array(order.get("order_item"), at + "order_item")):
        here = f"{at}order_item[{i}]."
        item = obj(raw, here[:-1])
        lines.append(
            line_item_fields(
                line_id=opt_ident(item.get("order_item_id"), here + "order_item_id"),
                product_id=opt_ident(item.get("product_id"), here + "product_id"),
                variant_id=opt_ident(item.get("product_variant_id"), here + "product_variant_id"),
                sku=text(item.get("sku"), here + "sku"),
                title=text(item.get("name"), here + "name"),
                quantity=quantity(item.get("qty"), here + "qty"),
                price=money(item.get("price"), here + "price"),
            )
        )
    paid = flag(order.get("is_paid"), at + "is_paid")
    if paid is None:
        paid = flag(order.get("payment_status"), at + "payment_status")
    returned = flag(order.get("return_order"), at + "return_order")
    currency = opt_obj(order.get("currency"), at + "currency")
    return order_id, order_fields(
        order_id=order_id,
        number=text(order.get("full_order_code"), at + "full_order_code"),
        status=text(order.get("order_status_id"), at + "order_status_id"),
        financial_status=None if paid is None else ("paid" if paid else "pending"),
        fulfillment_status=None,
        return_status="returned" if returned else None,
        currency=text(currency.get("iso4217"), at + "currency.iso4217"),
        total=money(order.get("grand_total"), at + "grand_total"),
        subtotal=money(order.get("sub_total"), at + "sub_total"),
        shipping=money(order.get("shipping"), at + "shipping"),
        line_items=lines,
        created_at=_time(order, "date_created", at),
        updated_at=_time(order, "date_modified", at),
        cancelled_at=_time(order, "date_cancelled", at),
        paid_at=_time(order, "payment_datetime", at),
    )


def _variant(body: dict[str, Any]) -> dict[str, Any]:
    return variant_fields(
        variant_id=ident(body.get("variant_id"), "variant_id"),
        product_id=opt_ident(body.get("product_id"), "product_id"),
        sku=text(body.get("sku"), "sku"),
        title=text(body.get("variant_name"), "variant_name"),
        price=money(body.get("price"), "price"),
        inventory_quantity=quantity(body.get("new_stock"), "new_stock"),
        previous_quantity=quantity(body.get("old_stock"), "old_stock"),
        active=flag(body.get("active"), "active"),
    )


def _product(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product_id = ident(body.get("product_id"), "product_id")
    return product_id, product_fields(
        product_id=product_id,
        title=text(body.get("name"), "name"),
        active=flag(body.get("active"), "active"),
        price=money(body.get("price"), "price"),
        inventory_quantity=quantity(body.get("remain_stock"), "remain_stock"),
        variants=[],
        created_at=_time(body, "date_created"),
        updated_at=_time(body, "date_modified"),
    )
