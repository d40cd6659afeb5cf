"""Standard Webhooks v1: one test per verification failure mode."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bridge.errors import VerificationFailed
from bridge.platforms.base import WebhookPlatform
from bridge.platforms.standard import PLUGIN, secret_bytes, sign
from tests.platforms.support import (
    NOW,
    delivery,
    fixture_bytes,
    shop,
)

PLATFORM: WebhookPlatform = PLUGIN.webhooks
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
