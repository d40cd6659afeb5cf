"""BentoWeb normalisation of the seed payloads (orders, variants, products)."""

from __future__ import annotations

import orjson
import pytest

from bridge.errors import InvalidPayload, UnknownEvent
from bridge.events import body_digest, event_id
from bridge.platforms.bentoweb import ORDER_PII_FIELDS
from tests.platforms.support import (
    FIXTURES,
    SEEDS,
    fields,
    fixture,
    fixture_bytes,
    normalise,
    privacy,
)

ORDER = fixture_bytes("bentoweb/order.json")
VARIANT = fixture_bytes("bentoweb/variant.json")
PRODUCT = fixture_bytes("bentoweb/product.json")


@pytest.mark.parametrize(
    "name", ["bentoweb/product.json", "bentoweb/variant.json", "bentoweb/order.json"]
)
def test_fixture_is_verbatim_from_seed(name: str) -> None:
    """Each BentoWeb fixture is a verbatim block of the seed document."""
    seed = SEEDS / "bentoweb-callback-webhook-examples.txt"
    block = (FIXTURES / name).read_text(encoding="utf-8")
    assert True is (block in seed.read_text(encoding="utf-8"))


# -- normalisation -----------------------------------------------------------------------------


def test_order_fields() -> None:
    """The seed order: ids as strings, string money as decimals, Bangkok times in UTC, zero dates null."""
    event = normalise("bentoweb", "order.paid", ORDER)
    expected = {
        "schema": "order.v1",
        "platform": "bentoweb",
        "shop": "bentoweb-shop",
        "event": "order.paid",
        "type": "commerce.order.paid",
        "occurred_at": "2024-07-11T07:27:46Z",
        "received_at": "2024-07-11T08:00:00Z",
        "order_id": "432580",
        "number": "***********",
        "status": "3",
        "financial_status": "paid",
        "fulfillment_status": None,
        "return_status": None,
        "currency": "USD",
        "total": "2119.00",
        "subtotal": "1999.00",
        "shipping": "120.00",
        "line_items": [
            {"line_id": "543850", "product_id": "71212", "variant_id": "744800",
             "sku": "********", "title": "********", "quantity": 1, "price": "1999"},
        ],
        "created_at": "2023-05-02T06:42:00Z",
        "updated_at": "2024-07-11T07:27:46Z",
        "cancelled_at": None,
        "paid_at": "2023-05-02T13:36:00Z",
    }  # fmt: skip
    assert expected == fields(event)


@pytest.mark.parametrize(
    ("event", "action"),
    [("order.new", "created"), ("order.paid", "paid"), ("order.cancel", "cancelled")],
)
def test_order_actions(event: str, action: str) -> None:
    """order.new/paid/cancel map to created/paid/cancelled."""
    assert f"commerce.order.{action}" == normalise("bentoweb", event, ORDER).type


def test_order_pii_is_encrypted() -> None:
    """Every non-empty PII field of the seed order is a token; decrypting restores the original."""
    p = privacy()
    raw = normalise("bentoweb", "order.new", ORDER).value["raw"]
    original = fixture("bentoweb/order.json")
    order, source = raw["data"]["order"], original["data"]["order"]
    present = [f for f in ORDER_PII_FIELDS if source.get(f)]
    expected = [True] * len(present)
    assert expected == [order[f].startswith("enc:v1:k1:") for f in present]
    assert original == p.reveal(raw)


def test_order_non_pii_stays_readable_in_raw() -> None:
    """Order ids, money and items are not PII and stay as sent."""
    raw = normalise("bentoweb", "order.new", ORDER).value["raw"]["data"]["order"]
    expected = (432580, "2119.00", 744800, 934892)
    actual = (
        raw["order_id"],
        raw["grand_total"],
        raw["order_item"][0]["product_variant_id"],
        raw["guest_id"],
    )
    assert expected == actual


def test_sub_order_pii_is_encrypted() -> None:
    """PII fields inside sub_order entries are protected as well."""
    body = orjson.loads(ORDER)
    body["data"]["order"]["sub_order"] = [{"email": "sub@example.com", "order_id": 2}]
    raw = normalise("bentoweb", "order.new", orjson.dumps(body)).value["raw"]
    sub = raw["data"]["order"]["sub_order"][0]
    assert (True, 2) == (sub["email"].startswith("enc:v1:"), sub["order_id"])


def test_order_has_no_pii_outside_raw() -> None:
    """The normalised order carries no e-mail even when the order has a real one."""
    body = orjson.loads(ORDER)
    body["data"]["order"]["email"] = "somchai@example.com"
    text = orjson.dumps(fields(normalise("bentoweb", "order.new", orjson.dumps(body))))
    assert False is (b"somchai" in text)


def test_cancelled_order_has_cancelled_at() -> None:
    """A real date_cancelled (Bangkok time) becomes cancelled_at in UTC."""
    body = orjson.loads(ORDER)
    body["data"]["order"]["date_cancelled"] = "2024-07-12 09:00:00"
    event = normalise("bentoweb", "order.cancel", orjson.dumps(body))
    assert "2024-07-12T02:00:00Z" == event.value["cancelled_at"]


@pytest.mark.parametrize("zero", ["-0001-11-30 00:00:00", "0000-00-00 00:00:00", "", None])
def test_zero_dates_are_null(zero: str | None) -> None:
    """BentoWeb's zero dates mean no date."""
    body = orjson.loads(ORDER)
    body["data"]["order"]["payment_datetime"] = zero
    assert None is normalise("bentoweb", "order.paid", orjson.dumps(body)).value["paid_at"]


def test_variant_fields() -> None:
    """The seed variant: string price, both stock values and their delta."""
    event = normalise("bentoweb", "variant.update", VARIANT)
    expected = {
        "variant_id": "753758", "product_id": "53716", "sku": None, "title": "ascascasc",
        "price": "100.00", "inventory_quantity": 0, "previous_quantity": 0, "stock_delta": 0,
        "inventory_managed": None, "active": False, "updated_at": None,
    }  # fmt: skip
    actual = {k: v for k, v in fields(event).items() if k in expected}
    assert (expected, "commerce.variant.updated", "bentoweb-shop:753758") == (
        actual,
        event.type,
        event.key,
    )


def test_variant_stock_delta() -> None:
    """old_stock 10 → new_stock 7 is a delta of -3."""
    body = orjson.loads(VARIANT) | {"old_stock": 10, "new_stock": 7}
    value = normalise("bentoweb", "variant.update", orjson.dumps(body)).value
    assert (7, 10, -3) == (
        value["inventory_quantity"],
        value["previous_quantity"],
        value["stock_delta"],
    )


@pytest.mark.parametrize(
    ("price", "expected"), [(100, "100"), ("100.50", "100.50"), (99.9, "99.9")]
)
def test_price_string_or_number_is_decimal_string(price: object, expected: str) -> None:
    """Prices arrive as strings or numbers and leave as decimal strings."""
    body = orjson.loads(VARIANT) | {"price": price}
    assert expected == normalise("bentoweb", "variant.add", orjson.dumps(body)).value["price"]


def test_variant_time_falls_back_to_receipt() -> None:
    """Variant events have no time of their own: occurred_at is when the bridge received it."""
    event = normalise("bentoweb", "variant.delete", VARIANT)
    assert ("2024-07-11T08:00:00Z", "commerce.variant.deleted") == (
        event.value["occurred_at"],
        event.type,
    )


def test_product_fields() -> None:
    """The seed product: numeric price as decimal string, remain_stock, no variants."""
    event = normalise("bentoweb", "product.add", PRODUCT)
    expected = {
        "product_id": "53717", "title": "Product 22", "active": False, "price": "1000",
        "inventory_quantity": 500, "variants": [], "created_at": None, "updated_at": None,
    }  # fmt: skip
    actual = {k: v for k, v in fields(event).items() if k in expected}
    assert (expected, "commerce.product.created") == (actual, event.type)


def test_event_id_is_body_digest() -> None:
    """Without a delivery id, the same body and event give the same id; another body another id."""
    expected = event_id("bentoweb-shop", "variant.update", body_digest(VARIANT))
    other = normalise(
        "bentoweb", "variant.update", VARIANT.replace(b'"new_stock": 0', b'"new_stock": 1')
    )
    assert (expected, True) == (
        normalise("bentoweb", "variant.update", VARIANT).id,
        other.id != expected,
    )


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("order.new", b'{"status": 1}'),
        ("order.new", b'{"status": 1, "data": []}'),
        ("order.new", b'{"status": 1, "data": {"order": null}}'),
        ("order.new", b'{"status": 1, "data": {"order": {"order_id": "   "}}}'),
        ("order.new", b'{"data": {"order": {"order_id": 1, "order_item": [{"qty": "many"}]}}}'),
        ("order.new", b'{"data": {"order": {"order_id": 1, "currency": "USD"}}}'),
        (
            "order.paid",
            b'{"data": {"order": {"order_id": 1, "date_created": "2023-13-02 13:42:00"}}}',
        ),
        ("variant.update", b'{"product_id": 1}'),
        ("variant.update", b'{"variant_id": 1, "new_stock": 1e300}'),
        ("variant.update", b'{"variant_id": 1, "old_stock": "ten"}'),
        ("variant.update", b'{"variant_id": 1, "price": "1,000"}'),
        ("variant.update", b'{"variant_id": 1, "active": 2}'),
        ("product.update", b'{"product_id": [1]}'),
        ("product.update", b"[]"),
    ],
)
def test_malformed_payload_is_invalid(event: str, body: bytes) -> None:
    """Malformed bodies raise InvalidPayload."""
    with pytest.raises(InvalidPayload):
        normalise("bentoweb", event, body)


def test_normalise_rejects_unknown_event() -> None:
    """normalise refuses an event name event_name would not have produced."""
    with pytest.raises(UnknownEvent):
        normalise("bentoweb", "order.shipped", ORDER)
