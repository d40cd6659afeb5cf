"""Standard Webhooks v1: event types and normalisation."""

from __future__ import annotations

import orjson
import pytest

from bridge.errors import InvalidPayload, UnknownEvent
from bridge.events import event_id
from bridge.platforms.base import WebhookPlatform
from bridge.platforms.standard import PLUGIN
from tests.platforms.support import (
    delivery,
    fields,
    fixture_bytes,
    normalise,
    privacy,
    shop,
)

PLATFORM: WebhookPlatform = PLUGIN.webhooks
MSG_ID = "msg_2b2Qm0Yk3gJ1"
BODY = fixture_bytes("standard/order_paid.json")


# -- events and normalisation ------------------------------------------------------------------


def test_event_from_body_type() -> None:
    """The body's type names the event."""
    assert "order.paid" == PLATFORM.event_name(delivery(shop("standard"), BODY, path_event="x.y"))


def test_event_from_path_when_body_has_no_type() -> None:
    """Without a type in the body the URL's event is used."""
    body = b'{"data": {"id": 1}}'
    actual = PLATFORM.event_name(delivery(shop("standard"), body, path_event="variant.updated"))
    assert "variant.updated" == actual


@pytest.mark.parametrize(
    "body", [b'{"type": "paid"}', b'{"type": ""}', b"not json", b'{"type": 5}']
)
def test_missing_or_malformed_type_is_unknown(body: bytes) -> None:
    """No usable type and no path event raise UnknownEvent."""
    with pytest.raises(UnknownEvent):
        PLATFORM.event_name(delivery(shop("standard"), body))


def test_order_fields() -> None:
    """An order.paid body becomes the canonical order; offsets are converted to UTC."""
    event = normalise("standard", "order.paid", BODY, headers={"webhook-id": MSG_ID})
    expected = {
        "schema": "order.v1",
        "platform": "standard",
        "shop": "standard-shop",
        "event": "order.paid",
        "type": "commerce.order.paid",
        "occurred_at": "2024-07-11T06:27:46Z",
        "received_at": "2024-07-11T08:00:00Z",
        "order_id": "ord_9001",
        "number": "W-9001",
        "status": "open",
        "financial_status": "paid",
        "fulfillment_status": None,
        "return_status": None,
        "currency": "EUR",
        "total": "49.90",
        "subtotal": "44.90",
        "shipping": "5.00",
        "line_items": [
            {"line_id": "li_1", "product_id": "p_1", "variant_id": "v_1", "sku": "MUG-RED",
             "title": "Mug", "quantity": 2, "price": "22.45"},
        ],
        "created_at": "2024-07-11T06:20:00Z",
        "updated_at": "2024-07-11T06:27:46Z",
        "cancelled_at": None,
        "paid_at": "2024-07-11T06:27:40Z",
    }  # fmt: skip
    assert expected == fields(event)


def test_event_id_is_keyed_on_webhook_id() -> None:
    """The message id is the delivery key: a redelivery maps to the same event id."""
    event = normalise("standard", "order.paid", BODY, headers={"webhook-id": MSG_ID})
    assert event_id("standard-shop", "order.paid", MSG_ID) == event.id


def test_order_pii_encrypted() -> None:
    """Customer and address in data are tokens; reveal restores the body."""
    raw = normalise("standard", "order.paid", BODY).value["raw"]
    assert (True, orjson.loads(BODY)) == (
        raw["data"]["customer"].startswith("enc:v1:"),
        privacy().reveal(raw),
    )


def test_variant_fields() -> None:
    """variant.updated with previous_quantity yields a stock delta."""
    event = normalise("standard", "variant.updated", fixture_bytes("standard/variant_updated.json"))
    value = event.value
    expected = ("variant", "updated", "v_1", 8, 10, -2)
    actual = (
        event.entity,
        event.action,
        value["variant_id"],
        value["inventory_quantity"],
        value["previous_quantity"],
        value["stock_delta"],
    )
    assert expected == actual


def test_customer_data_is_pii_except_ids() -> None:
    """customer.* keeps id and times readable and protects the rest of data."""
    event = normalise(
        "standard", "customer.created", fixture_bytes("standard/customer_created.json")
    )
    data = event.value["raw"]["data"]
    readable = sorted(k for k, v in data.items() if not str(v).startswith("enc:v1:"))
    assert (["created_at", "id", "updated_at"], "cus_77") == (readable, event.value["customer_id"])


def test_unknown_prefix_is_other() -> None:
    """A type whose prefix is not an entity maps to other, data protected."""
    body = b'{"type": "refund.created", "data": {"id": "r_1", "email": "a@example.com"}}'
    event = normalise("standard", "refund.created", body)
    expected = ("other", "commerce.other.created", "refund", "r_1", True)
    actual = (
        event.entity,
        event.type,
        event.value["resource"],
        event.value["object_id"],
        event.value["raw"]["data"]["email"].startswith("enc:v1:"),
    )
    assert expected == actual


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"type": "order.paid"}',
        b'{"type": "order.paid", "data": "x"}',
        b'{"type": "order.paid", "data": {"id": {}}}',
        b'{"type": "order.paid", "data": {"id": "1", "total": "NaN"}}',
        b'{"type": "order.paid", "data": {"id": "1", "created_at": "2024-02-30T00:00:00Z"}}',
    ],
)
def test_malformed_payload_is_invalid(body: bytes) -> None:
    """Malformed bodies raise InvalidPayload."""
    with pytest.raises(InvalidPayload):
        normalise("standard", "order.paid", body)
