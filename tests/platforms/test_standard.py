"""Standard Webhooks v1: one test per verification failure mode, event types, normalisation."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from bridge.errors import InvalidPayload, UnknownEvent, VerificationFailed
from bridge.events import event_id
from bridge.platforms.base import WebhookPlatform
from bridge.platforms.standard import StandardPlatform, secret_bytes, sign
from tests.platforms.support import (
    NOW,
    delivery,
    fields,
    fixture_bytes,
    normalise,
    privacy,
    shop,
)

PLATFORM: WebhookPlatform = StandardPlatform()
SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()
MSG_ID = "msg_2b2Qm0Yk3gJ1"
BODY = fixture_bytes("standard/order_paid.json")
STAMP = int(NOW)


def _headers(
    msg_id: str | None = MSG_ID, stamp: str | None = str(STAMP), sig: str | None = None
) -> dict[str, str]:
    headers = {}
    if msg_id is not None:
        headers["webhook-id"] = msg_id
    if stamp is not None:
        headers["webhook-timestamp"] = stamp
    headers["webhook-signature"] = sig if sig is not None else sign(SECRET, MSG_ID, STAMP, BODY)
    return headers


def _verify(
    headers: dict[str, str], secrets: tuple[str, ...] = (SECRET,), body: bytes = BODY
) -> None:
    PLATFORM.verify(delivery(shop("standard", webhook_secrets=secrets), body, headers=headers), NOW)


# -- verification ------------------------------------------------------------------------------


def test_valid_signature_verifies() -> None:
    """A correctly signed message passes."""
    _verify(_headers())


def test_signature_matches_reference_construction() -> None:
    """The signature is base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the secret."""
    content = f"{MSG_ID}.{STAMP}.".encode() + BODY
    digest = hmac.new(b"standard-webhooks-test-key-32byt", content, hashlib.sha256).digest()
    assert "v1," + base64.b64encode(digest).decode() == sign(SECRET, MSG_ID, STAMP, BODY)


def test_missing_id_fails() -> None:
    """No webhook-id header is rejected."""
    with pytest.raises(VerificationFailed, match="webhook-id"):
        _verify(_headers(msg_id=None))


def test_missing_timestamp_fails() -> None:
    """No webhook-timestamp header is rejected."""
    with pytest.raises(VerificationFailed, match="missing webhook-timestamp"):
        _verify(_headers(stamp=None))


@pytest.mark.parametrize("stamp", ["soon", "1720684800.5", "-1720684800", "1e9"])
def test_bad_timestamp_fails(stamp: str) -> None:
    """A timestamp that is not Unix seconds is rejected."""
    with pytest.raises(VerificationFailed, match="not Unix seconds"):
        _verify(_headers(stamp=stamp))


def test_too_old_timestamp_fails() -> None:
    """More than five minutes in the past is rejected."""
    old = STAMP - 301
    with pytest.raises(VerificationFailed, match="too old"):
        _verify(_headers(stamp=str(old), sig=sign(SECRET, MSG_ID, old, BODY)))


def test_too_new_timestamp_fails() -> None:
    """More than five minutes in the future is rejected."""
    new = STAMP + 301
    with pytest.raises(VerificationFailed, match="too new"):
        _verify(_headers(stamp=str(new), sig=sign(SECRET, MSG_ID, new, BODY)))


def test_timestamp_at_tolerance_edge_verifies() -> None:
    """Exactly five minutes old is still accepted."""
    edge = STAMP - 300
    _verify(_headers(stamp=str(edge), sig=sign(SECRET, MSG_ID, edge, BODY)))


def test_no_v1_signature_fails() -> None:
    """A header without any v1 entry is rejected."""
    sig = sign(SECRET, MSG_ID, STAMP, BODY).replace("v1,", "v2,")
    with pytest.raises(VerificationFailed, match="no v1 signature"):
        _verify(_headers(sig=sig))


def test_wrong_signature_fails() -> None:
    """A v1 signature made with another secret is rejected."""
    with pytest.raises(VerificationFailed, match="no webhook-signature matches"):
        _verify(_headers(sig=sign("whsec_b3RoZXI=", MSG_ID, STAMP, BODY)))


def test_tampered_body_fails() -> None:
    """The signature covers the body."""
    with pytest.raises(VerificationFailed):
        _verify(_headers(), body=BODY.replace(b"49.90", b"0.01"))


def test_signature_bound_to_message_id() -> None:
    """A signature for another message id does not verify."""
    with pytest.raises(VerificationFailed):
        _verify(_headers(msg_id="msg_other"))


def test_rotation_second_secret_verifies() -> None:
    """With two secrets configured a signature by either passes."""
    new = "whsec_" + base64.b64encode(b"new-key").decode()
    _verify(_headers(sig=sign(new, MSG_ID, STAMP, BODY)), secrets=(SECRET, new))


def test_several_signatures_one_valid_verifies() -> None:
    """The sender may list several signatures; one match is enough."""
    bad = sign("whsec_b3RoZXI=", MSG_ID, STAMP, BODY)
    good = sign(SECRET, MSG_ID, STAMP, BODY)
    _verify(_headers(sig=f"v1a,xyz {bad} {good}"))


def test_svix_header_names_verify() -> None:
    """svix-id / svix-timestamp / svix-signature are accepted as well."""
    headers = {f"svix-{k.split('-', 1)[1]}": v for k, v in _headers().items()}
    _verify(headers)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("whsec_aGVsbG8=", b"hello"),
        ("aGVsbG8=", b"hello"),
        ("plain secret!", b"plain secret!"),
    ],
)
def test_secret_formats(secret: str, expected: bytes) -> None:
    """whsec_<base64>, raw base64 and plain text secrets are all usable."""
    assert expected == secret_bytes(secret)


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
