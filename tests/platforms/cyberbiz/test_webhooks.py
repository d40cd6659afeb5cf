"""Cyberbiz webhooks: HMAC verification and resource/action event names."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from bridge.errors import UnknownEvent, VerificationFailed
from bridge.platforms import get_platform
from bridge.platforms.base import WebhookPlatform
from bridge.platforms.cyberbiz import PLUGIN, signature
from tests.platforms.support import (
    NOW,
    SECRET,
    delivery,
    fixture_bytes,
    shop,
)

PLATFORM: WebhookPlatform = PLUGIN.webhooks
BODY = fixture_bytes("cyberbiz/order.json")


def _digest(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def _verify(header: str | None, body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,)) -> None:
    headers = {} if header is None else {"X-Cyberbiz-Hmac-Sha256": header}
    PLATFORM.verify(delivery(shop("cyberbiz", webhook_secrets=secrets), body, headers=headers), NOW)


# -- verification ------------------------------------------------------------------------------


def test_registry_returns_cyberbiz() -> None:
    """get_platform('cyberbiz') is this module's platform."""
    assert "cyberbiz" == get_platform("cyberbiz").name


def test_lowercase_hex_signature_verifies() -> None:
    """Live traffic's lowercase hex HMAC is accepted."""
    _verify(_digest(SECRET, BODY).hex())


def test_uppercase_hex_signature_verifies() -> None:
    """Uppercase hex is accepted too."""
    _verify(_digest(SECRET, BODY).hex().upper())


def test_base64_signature_verifies() -> None:
    """The documented base64 form is accepted."""
    _verify(base64.b64encode(_digest(SECRET, BODY)).decode())


def test_signature_helper_is_lowercase_hex() -> None:
    """signature() produces what verify() accepts, as live traffic sends it."""
    expected = _digest(SECRET, BODY).hex()
    assert expected == signature(SECRET, BODY)


def test_missing_signature_fails() -> None:
    """No X-Cyberbiz-Hmac-Sha256 header is a verification failure."""
    with pytest.raises(VerificationFailed, match="missing"):
        _verify(None)


def test_wrong_secret_fails() -> None:
    """An HMAC made with another secret is rejected."""
    with pytest.raises(VerificationFailed, match="does not match"):
        _verify(signature("other-secret", BODY))


def test_tampered_body_fails() -> None:
    """Changing one byte of the body breaks the signature."""
    with pytest.raises(VerificationFailed):
        _verify(signature(SECRET, BODY), body=BODY.replace(b"1840.0", b"1.0"))


def test_garbage_signature_fails() -> None:
    """A header that is neither hex nor base64 of 32 bytes is rejected."""
    with pytest.raises(VerificationFailed, match="neither hex nor base64"):
        _verify("not-a-signature")


def test_rotation_any_secret_may_match() -> None:
    """During a rotation the new secret's signature verifies against the list."""
    _verify(signature("new-secret", BODY), secrets=(SECRET, "new-secret"))


def test_no_secrets_configured_fails() -> None:
    """Without a secret nothing verifies."""
    with pytest.raises(VerificationFailed):
        _verify(signature(SECRET, BODY), secrets=())


# -- event names -------------------------------------------------------------------------------


def _event(headers: dict[str, str], path_event: str | None = None) -> str:
    return PLATFORM.event_name(
        delivery(shop("cyberbiz"), BODY, headers=headers, path_event=path_event)
    )


def test_event_from_header() -> None:
    """X-Cyberbiz-Event names the event."""
    assert "orders/paid" == _event({"X-Cyberbiz-Event": "orders/paid"})


def test_event_header_wins_over_path() -> None:
    """The header is preferred to the URL's event."""
    assert "orders/paid" == _event({"X-Cyberbiz-Event": "orders/paid"}, "orders.create")


def test_event_from_path_with_dot() -> None:
    """Without the header the URL's event is used; orders.create means orders/create."""
    assert "orders/create" == _event({}, "orders.create")


@pytest.mark.parametrize("name", ["orders", "orders/", "widgets/create", "orders/paid/x", "ORD/1"])
def test_malformed_or_unknown_event_is_rejected(name: str) -> None:
    """Names that are not resource/action of a known resource raise UnknownEvent."""
    with pytest.raises(UnknownEvent):
        _event({"X-Cyberbiz-Event": name})


def test_missing_event_is_rejected() -> None:
    """No header and no path event raise UnknownEvent."""
    with pytest.raises(UnknownEvent):
        _event({})
