"""BentoWeb webhooks: token + IP verification and per-URL event names."""

from __future__ import annotations

import pytest

from bridge.errors import UnknownEvent, VerificationFailed
from bridge.platforms.base import WebhookPlatform
from bridge.platforms.bentoweb import PLUGIN, ip_allowed
from tests.platforms.support import (
    NOW,
    SECRET,
    delivery,
    fixture_bytes,
    shop,
)

PLATFORM: WebhookPlatform = PLUGIN.webhooks
ORDER = fixture_bytes("bentoweb/order.json")


# -- verification ------------------------------------------------------------------------------


def _verify(
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    client_ip: str | None = "203.0.113.7",
    **shop_settings: object,
) -> None:
    config = shop("bentoweb", **shop_settings)
    PLATFORM.verify(delivery(config, ORDER, headers=headers, query=query, client_ip=client_ip), NOW)


def test_token_in_header_verifies() -> None:
    """X-Webhook-Token with the shop's secret is accepted."""
    _verify(headers={"X-Webhook-Token": SECRET})


def test_token_in_query_verifies() -> None:
    """?token= with the shop's secret is accepted."""
    _verify(query={"token": SECRET})


def test_missing_token_fails() -> None:
    """No token anywhere is a verification failure."""
    with pytest.raises(VerificationFailed, match="missing"):
        _verify()


def test_wrong_token_fails() -> None:
    """A token that is not the secret is rejected."""
    with pytest.raises(VerificationFailed, match="does not match"):
        _verify(headers={"X-Webhook-Token": SECRET + "x"})


def test_non_ascii_token_fails_cleanly() -> None:
    """A non-ASCII token is compared as bytes and rejected, not a TypeError."""
    with pytest.raises(VerificationFailed):
        _verify(query={"token": "ทดสอบ"})


def test_rotation_any_secret_may_match() -> None:
    """During a rotation both tokens are accepted."""
    _verify(query={"token": "new"}, webhook_secrets=(SECRET, "new"))


def test_allowed_ip_in_cidr_verifies() -> None:
    """A source address inside an allowed CIDR block passes."""
    _verify(query={"token": SECRET}, allowed_ips=("198.51.100.0/24", "203.0.113.0/24"))


def test_ip_outside_allow_list_fails() -> None:
    """A source address outside the allow-list is rejected even with the right token."""
    with pytest.raises(VerificationFailed, match="allowed_ips"):
        _verify(query={"token": SECRET}, allowed_ips=("198.51.100.0/24",))


def test_unknown_source_address_fails_with_allow_list() -> None:
    """Without a client address an allow-list cannot pass."""
    with pytest.raises(VerificationFailed):
        _verify(query={"token": SECRET}, client_ip=None, allowed_ips=("0.0.0.0/0",))


def test_ipv4_mapped_ipv6_source_matches_ipv4_rule() -> None:
    """::ffff:203.0.113.7 counts as 203.0.113.7."""
    assert True is ip_allowed("::ffff:203.0.113.7", ("203.0.113.7",))


def test_invalid_allow_list_entry_allows_nothing() -> None:
    """An entry that does not parse fails closed."""
    assert False is ip_allowed("203.0.113.7", ("not-an-ip",))


# -- event names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path_event", "expected"),
    [
        ("order.new", "order.new"),
        ("order.paid", "order.paid"),
        ("order.cancel", "order.cancel"),
        ("order.create", "order.new"),
        ("order.cancelled", "order.cancel"),
        ("variant.add", "variant.add"),
        ("variant.create", "variant.add"),
        ("variant.update", "variant.update"),
        ("product_variant.update", "variant.update"),
        ("variant.delete", "variant.delete"),
        ("product.add", "product.add"),
        ("Product.Updated", "product.update"),
        ("product.remove", "product.delete"),
    ],
)
def test_event_from_path_and_aliases(path_event: str, expected: str) -> None:
    """The URL's event names the event; common spellings map to BentoWeb's own names."""
    assert expected == PLATFORM.event_name(delivery(shop("bentoweb"), ORDER, path_event=path_event))


@pytest.mark.parametrize(
    "path_event", [None, "", "order", "order.shipped", "stock.update", "x.y.z"]
)
def test_unknown_event_is_rejected(path_event: str | None) -> None:
    """Missing or unknown events raise UnknownEvent."""
    with pytest.raises(UnknownEvent):
        PLATFORM.event_name(delivery(shop("bentoweb"), ORDER, path_event=path_event))
