"""Record → sync-group input mapping (pure): which records mean something, and what."""

from __future__ import annotations

from dataclasses import replace

from bridge.kafka.topics import Topics
from consumers.inventory_sync.directory import Directory
from consumers.inventory_sync.inputs import Level, OrderLines, inputs_of
from consumers.inventory_sync.orders import OrderAction
from tests.consumers.inventory_sync.support import Feed, make_config

DIRECTORY = Directory.from_config(make_config())
TOPICS = Topics()


def test_a_level_of_a_synced_variant_is_one_level_input() -> None:
    """inventory_quantity and previous_quantity of a member's variant event."""
    record = Feed().level("bento-bkk", "753758", 6, previous=8)
    member = DIRECTORY.for_variant("bento-bkk", "753758")
    assert [Level(member, 6, 8, record.position)] == inputs_of(record, TOPICS, DIRECTORY)  # type: ignore[arg-type]


def test_any_variant_of_a_cyberbiz_group_is_the_group_member() -> None:
    """A variants/update of a variant in a Cyberbiz inventory sync group observes the group."""
    (level,) = inputs_of(Feed().level("cb-taipei", "6001", 3), TOPICS, DIRECTORY)
    assert ("cb-taipei/group:77", "mug", 3) == (
        level.member.key,
        level.member.group,
        getattr(level, "level", None),
    )


def test_records_that_mean_nothing_map_to_nothing() -> None:
    """Unsynced variants, the other stock source, no level, other shops, malformed values."""
    feed = Feed()
    records = [
        feed.level("cb-taipei", "404", 3),
        feed.level("std-orders", "o-1", 3),
        feed.level("cb-taipei", "5001", None),
        feed.level("bento-bkk", "5001", 3),
        feed.order("cb-taipei", "A", "paid", [("5001", 1)]),
        feed.order("std-orders", "A", "fulfilled", [("o-1", 1)]),
    ]
    broken = [
        replace(records[0], value=None),
        replace(records[0], value=["not", "an", "object"]),
        replace(records[0], value={"shop": 7}),
        replace(records[0], topic="commerce.products"),
    ]
    assert [] == [i for r in records + broken for i in inputs_of(r, TOPICS, DIRECTORY)]


def test_an_order_sums_the_lines_of_each_synced_variant() -> None:
    """Two lines of one variant are one input; unsynced and malformed lines are skipped."""
    record = Feed().order("std-orders", "A9", "created", [("o-1", 2), ("o-1", 1), ("x", 4)])
    assert record.value is not None
    record.value["line_items"].append({"variant_id": "o-1", "quantity": "3"})
    (lines,) = inputs_of(record, TOPICS, DIRECTORY)
    assert isinstance(lines, OrderLines)
    assert ("A9", OrderAction.CREATED, 3, "std-orders/A9/o-1") == (
        lines.order_id,
        lines.action,
        lines.quantity,
        lines.line_key,
    )


def test_order_actions_map_to_debits_and_credits() -> None:
    """created, paid, cancelled, returned are the four order inputs."""
    feed = Feed()
    actions = [
        next(iter(inputs_of(feed.order("std-orders", "A", a, [("o-1", 1)]), TOPICS, DIRECTORY)))
        for a in ("created", "paid", "cancelled", "returned")
    ]
    assert [OrderAction.CREATED, OrderAction.PAID, OrderAction.CANCELLED, OrderAction.RETURNED] == [
        getattr(a, "action", None) for a in actions
    ]
