"""Cyberbiz normalisation of orders, variants, products, customers and other resources."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bridge.errors import InvalidPayload, UnknownEvent
from bridge.events import body_digest, event_id
from bridge.platforms._common import content_digest
from bridge.platforms.cyberbiz import ORDER_PII
from bridge.privacy import REDACTED
from tests.platforms.support import (
    fields,
    fixture,
    fixture_bytes,
    normalise,
    privacy,
)

BODY = fixture_bytes("cyberbiz/order.json")


# -- normalisation -----------------------------------------------------------------------------


def test_order_fields() -> None:
    """An order becomes the canonical order with Taipei times in UTC and decimal money."""
    event = normalise("cyberbiz", "orders/paid", BODY)
    expected = {
        "schema": "order.v1",
        "platform": "cyberbiz",
        "shop": "cyberbiz-shop",
        "event": "orders/paid",
        "type": "commerce.order.paid",
        "occurred_at": "2024-07-11T06:27:46Z",
        "received_at": "2024-07-11T08:00:00Z",
        "order_id": "88123456",
        "number": "#10045",
        "status": "open",
        "financial_status": "paid",
        "fulfillment_status": "unshipped",
        "return_status": None,
        "currency": "TWD",
        "total": "1840.0",
        "subtotal": "1780.0",
        "shipping": "60.0",
        "line_items": [
            {"line_id": "301", "product_id": "1001", "variant_id": "5001", "sku": "TEE-BLK-M",
             "title": "Logo tee", "quantity": 2, "price": "590.0"},
            {"line_id": "302", "product_id": "1002", "variant_id": "5007", "sku": "CAP-NAVY",
             "title": "Cap", "quantity": 1, "price": "600.1"},
        ],
        "created_at": "2024-07-11T06:20:05Z",
        "updated_at": "2024-07-11T06:27:46Z",
        "cancelled_at": None,
        "paid_at": None,
    }  # fmt: skip
    assert expected == fields(event)


def test_order_envelope() -> None:
    """Entity, action, Kafka key and time of an order event."""
    event = normalise("cyberbiz", "orders/paid", BODY)
    expected = ("order", "paid", "cyberbiz-shop:88123456", "2024-07-11T06:27:46+00:00")
    assert expected == (
        event.entity,
        event.action,
        event.key,
        event.time and event.time.isoformat(),
    )


def test_order_id_is_keyed_on_entity_updated_at_and_content() -> None:
    """The event id comes from (id, updated_at, normalised content), not from body bytes."""
    compact = orjson.dumps(orjson.loads(BODY))
    event = normalise("cyberbiz", "orders/paid", BODY)
    envelope = ("schema", "id", "platform", "shop", "event", "type", "occurred_at", "received_at")
    entity = {k: v for k, v in event.value.items() if k not in (*envelope, "raw")}
    key = f"88123456|2024-07-11 14:27:46|{content_digest(entity)}"
    expected = event_id("cyberbiz-shop", "orders/paid", key)
    actual = {normalise("cyberbiz", "orders/paid", b).id for b in (BODY, compact)}
    assert {expected} == actual


def test_redelivery_with_extra_raw_field_is_the_same_event() -> None:
    """A redelivery whose body differs only outside the normalised fields keeps its id."""
    variant = fixture("cyberbiz/variant.json")
    again = orjson.dumps(variant | {"sold": 43})
    first = normalise("cyberbiz", "variants/update", orjson.dumps(variant))
    assert first.id == normalise("cyberbiz", "variants/update", again).id


def test_two_stock_changes_in_one_second_are_two_events() -> None:
    """Same variant, same updated_at, different stock: both are published (distinct ids)."""
    variant = fixture("cyberbiz/variant.json")
    first = normalise("cyberbiz", "variants/update", orjson.dumps(variant))
    second = normalise(
        "cyberbiz", "variants/update", orjson.dumps(variant | {"inventory_quantity": 16})
    )
    assert False is (first.id == second.id)


def test_order_without_updated_at_is_keyed_on_body() -> None:
    """Without updated_at the body digest is the delivery key."""
    body = orjson.dumps({"id": 5, "updated_at": None})
    expected = event_id("cyberbiz-shop", "orders/create", body_digest(body))
    assert expected == normalise("cyberbiz", "orders/create", body).id


def test_order_pii_is_encrypted_in_raw() -> None:
    """Customer, buyer, receiver, einvoice, card and note are tokens that decrypt back."""
    p = privacy()
    raw = normalise("cyberbiz", "orders/paid", BODY).value["raw"]
    original = fixture("cyberbiz/order.json")
    present = [k for k in ORDER_PII if original.get(k)]
    assert all(raw[k].startswith("enc:v1:") for k in present)
    assert original == p.reveal(raw)


def test_order_has_no_pii_outside_raw() -> None:
    """Names, e-mails, phones and addresses appear nowhere in the normalised fields."""
    text = orjson.dumps(fields(normalise("cyberbiz", "orders/paid", BODY))).decode()
    leaked = [s for s in ("王小明", "example.com", "0912345678", "市府路", "4242") if s in text]
    assert [] == leaked


def test_order_pii_redacted() -> None:
    """In redact mode PII fields read [redacted]."""
    raw = normalise("cyberbiz", "orders/paid", BODY, privacy_mode="redact").value["raw"]
    assert (REDACTED, REDACTED, None) == (raw["customer"], raw["note"], raw["billing_address"])


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("orders/create", "created"),
        ("orders/paid", "paid"),
        ("orders/cancelled", "cancelled"),
        ("orders/returned", "returned"),
        ("orders/partial_return", "partially_returned"),
        ("orders/refunded", "refunded"),
        ("orders/closed", "closed"),
        ("orders/fulfillment_update", "updated"),
    ],
)
def test_order_actions(event: str, action: str) -> None:
    """Cyberbiz order verbs map to canonical actions; unknown verbs mean updated."""
    assert f"commerce.order.{action}" == normalise("cyberbiz", event, BODY).type


def test_variant_fields() -> None:
    """variants/update carries absolute stock; no previous value or delta from Cyberbiz."""
    event = normalise("cyberbiz", "variants/update", fixture_bytes("cyberbiz/variant.json"))
    expected = {
        "variant_id": "5001", "product_id": "1001", "sku": "TEE-BLK-M", "title": None,
        "price": "590.0", "inventory_quantity": 17, "previous_quantity": None,
        "stock_delta": None, "inventory_managed": True, "active": None,
        "updated_at": "2024-07-11T06:27:46Z",
    }  # fmt: skip
    actual = {k: v for k, v in fields(event).items() if k in expected}
    assert (expected, "commerce.variant.updated") == (actual, event.type)


def test_product_variants_inherit_product_id() -> None:
    """A product's variants without product_id get the parent's id."""
    event = normalise("cyberbiz", "products/update", fixture_bytes("cyberbiz/product.json"))
    value = event.value
    expected = ("1001", "Logo tee", True, ["1001", "1001"], [17, 0])
    actual = (
        value["product_id"],
        value["title"],
        value["active"],
        [v["product_id"] for v in value["variants"]],
        [v["inventory_quantity"] for v in value["variants"]],
    )
    assert expected == actual


def test_customer_everything_but_ids_is_pii() -> None:
    """A customer event keeps only id and times readable in raw."""
    event = normalise("cyberbiz", "customers/update", fixture_bytes("cyberbiz/customer.json"))
    raw = event.value["raw"]
    readable = sorted(k for k, v in raw.items() if not str(v).startswith("enc:v1:"))
    assert (["created_at", "id", "updated_at"], "7788") == (readable, event.value["customer_id"])


def test_unmapped_resource_is_other() -> None:
    """apps/uninstall is recognised but unmapped: entity other, body protected."""
    event = normalise("cyberbiz", "apps/uninstall", fixture_bytes("cyberbiz/app_uninstall.json"))
    expected = ("other", "commerce.other.uninstalled", "apps", "4321", True)
    actual = (
        event.entity,
        event.type,
        event.value["resource"],
        event.value["object_id"],
        event.value["raw"]["owner_email"].startswith("enc:v1:"),
    )
    assert expected == actual


def test_delete_with_only_an_id() -> None:
    """variants/delete with just an id normalises with nulls."""
    event = normalise("cyberbiz", "variants/delete", b'{"id": 9}')
    assert ("9", None, "commerce.variant.deleted") == (
        event.value["variant_id"],
        event.value["inventory_quantity"],
        event.type,
    )


def test_float_noise_is_not_money() -> None:
    """0.1 + 0.2 as a float price becomes "0.3", not its binary expansion."""
    event = normalise("cyberbiz", "variants/update", b'{"id": 1, "price": 0.30000000000000004}')
    assert "0.3" == event.value["price"]


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"order"',
        b"{}",
        b'{"id": true}',
        b'{"id": null}',
        b'{"id": 1, "line_items": {}}',
        b'{"id": 1, "line_items": [1]}',
        b'{"id": 1, "line_items": [{"quantity": 1e30}]}',
        b'{"id": 1, "line_items": [{"quantity": 1000000000000000000000000000000}]}',
        b'{"id": 1, "line_items": [{"quantity": 1.5}]}',
        b'{"id": 1, "prices": {"total_price": 1e300}}',
        b'{"id": 1, "prices": {"total_price": "12abc"}}',
        b'{"id": 1, "prices": []}',
        b'{"id": 1, "updated_at": "yesterday"}',
        b'{"id": 1, "updated_at": 1720679266}',
        b'{"id": 1, "updated_at": "0001-01-01 00:00:00"}',
        b'{"id": 1, "statuses": {"order_status": {"a": 1}}}',
    ],
)
def test_malformed_order_is_invalid_payload(body: bytes) -> None:
    """Malformed bodies raise InvalidPayload, never another exception."""
    with pytest.raises(InvalidPayload):
        normalise("cyberbiz", "orders/create", body)


def test_normalise_rejects_unknown_event() -> None:
    """normalise refuses an event name event_name would not have produced."""
    with pytest.raises(UnknownEvent):
        normalise("cyberbiz", "widgets/create", BODY)


def _roundtrip(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def test_raw_is_json_serialisable() -> None:
    """The canonical value serialises with orjson (what the publisher does)."""
    value = normalise("cyberbiz", "orders/paid", BODY).value
    assert value == _roundtrip(value)
