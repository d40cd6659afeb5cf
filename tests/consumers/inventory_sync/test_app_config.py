"""The inventory-sync configuration keys: defaults, and errors that name the bad key."""

from __future__ import annotations

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from consumers.inventory_sync.directory import Directory
from tests.consumers.inventory_sync.support import config_text, make_config

SHOPS = config_text().split("[[sync_groups]]")[0].replace("reconcile_interval = 0\n", "")


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, {})
    return str(raised.value)


def test_defaults() -> None:
    """reconcile_interval 600 s, echo_timeout 300 s, stock_source levels, buffer 0."""
    config = parse_config(SHOPS.replace("[inventory_sync]\n", ""), {})
    assert (600.0, 300.0, "levels") == (
        config.inventory_sync.reconcile_interval,
        config.inventory_sync.echo_timeout,
        config.shops["cb-taipei"].stock_source,
    )


def test_members_carry_buffer_source_and_group_variants() -> None:
    """buffer per member, the shop's stock_source, a Cyberbiz group's configured variant ids."""
    directory = Directory.from_config(make_config())
    bento = directory.for_variant("bento-bkk", "753758")
    orders = directory.for_variant("std-orders", "o-1")
    group = directory.for_variant("cb-taipei", "6002")
    assert (2, False, True, "cb-taipei/group:77", None) == (
        bento.buffer if bento else None,
        bento.orders if bento else None,
        orders.orders if orders else None,
        group.key if group else None,
        directory.for_variant("cb-taipei", "404"),
    )


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (
            '{ shop = "cb-taipei", variant = "1", buffer = -1 }',
            "sync_groups[0].members[0].buffer: must be >= 0, got -1",
        ),
        (
            '{ shop = "nowhere", variant = "1" }',
            "sync_groups[0].members[0].shop: unknown shop 'nowhere' (known: cb-taipei, "
            "bento-bkk, std-shop, std-orders)",
        ),
        (
            '{ shop = "bento-bkk", cyberbiz_group = "7" }',
            "sync_groups[0].members[0].cyberbiz_group: only Cyberbiz shops have sync groups",
        ),
        (
            '{ shop = "bento-bkk", variant = "1", variants = ["2"] }',
            "sync_groups[0].members[0].variants: is only for a member that is a platform's group",
        ),
        (
            '{ shop = "cb-taipei", cyberbiz_group = "7", variants = ["1"] }',
            "sync_groups[0].members[1].variants: already a member of sync group 'g'",
        ),
        (
            '{ shop = "cb-taipei", variant = "1" }',
            "sync_groups[0].members[1]: already a member of sync group 'g'",
        ),
    ],
)
def test_bad_members_are_named(group: str, expected: str) -> None:
    """Each invalid member names its key: buffer, unknown shop, platform, variants, duplicates."""
    text = SHOPS + f'[[sync_groups]]\nid = "g"\nmembers = [\n  {group},\n'
    if "already" in expected:
        text = (
            SHOPS
            + f'[[sync_groups]]\nid = "g"\nmembers = [\n  {{ shop = "cb-taipei", variant = "1" }},\n  {group},\n'
        )
    text += '  { shop = "std-shop", variant = "9" },\n]\n'
    assert expected == error_of(text)


def test_a_member_in_two_groups_is_named() -> None:
    """The same variant in two sync groups: the second names the first."""
    text = SHOPS + "".join(
        f'[[sync_groups]]\nid = "{g}"\nmembers = [{{ shop = "cb-taipei", variant = "1" }}, '
        f'{{ shop = "std-shop", variant = "{g}" }}]\n'
        for g in ("a", "b")
    )
    assert "sync_groups[1].members[0]: already a member of sync group 'a'" == error_of(text)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("reconcile_interval = -1", "inventory_sync.reconcile_interval: must be >= 0.0, got -1"),
        ("echo_timeout = 0", "inventory_sync.echo_timeout: must be >= 1.0, got 0"),
        (
            "poll = 3",
            "inventory_sync.poll: unknown key (allowed: echo_timeout, reconcile_interval)",
        ),
    ],
)
def test_bad_inventory_sync_settings_are_named(setting: str, expected: str) -> None:
    """[inventory_sync] values are checked and the key named."""
    assert expected == error_of(
        SHOPS.replace("[inventory_sync]\n", f"[inventory_sync]\n{setting}\n")
    )


def test_a_bad_stock_source_is_named() -> None:
    """stock_source is levels or orders."""
    text = SHOPS.replace('stock_source = "orders"', 'stock_source = "webhooks"')
    assert "shops[3].stock_source: must be one of levels, orders" == error_of(text)
