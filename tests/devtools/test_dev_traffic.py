"""The demo traffic's pure parts: change wording, spotting a change made elsewhere, settledness."""

from __future__ import annotations

from bridge.devtools.dev_config import GROUPS
from bridge.devtools.dev_traffic import Change, Journal, outside_change, settled

TEE = GROUPS[0]


def test_a_sale_that_spread_reads_as_plain_words() -> None:
    """A timed sale names the amount, the shop, the new level and the time to reach every shop."""
    change = Change("sale", TEE.id, "cb-tainan", -2, 37, 0.0, spread=0.4213)
    assert "sale of 2 at cb-tainan → every shop at 37 in 0.42 s" == change.words()


def test_a_restock_and_a_change_that_did_not_spread_say_so() -> None:
    """A restock names the recount; a change never seen everywhere says it gave up."""
    restock = Change("restock", TEE.id, None, 15, 55, 0.0, spread=0.2)
    lost = Change("sale", TEE.id, "bento-bkk", -1, 9, 0.0, gave_up=True)
    assert "restock of 15 (recount to 55) → every shop at 55 in 0.20 s" == restock.words()
    assert "sale of 1 at bento-bkk → not every shop at 9 after 10 s" == lost.words()


def test_the_one_member_that_left_the_even_level_unwritten_is_an_outside_change() -> None:
    """A member that left the group's even level with no write to its shop changed by the gap."""
    change = outside_change(TEE, [40, 38, 40], 40, set(), 5.0)
    assert change is not None
    expected = ("outside", TEE.id, "cb-tainan", -2, 38, 5.0)
    assert expected == (
        change.kind, change.group, change.shop, change.delta, change.pool, change.started
    )  # fmt: skip


def test_members_the_bridge_already_wrote_are_not_the_outside_change() -> None:
    """Seen late, a sale has already reached a member: the written one is the bridge's, not
    the sale (the demo once called this a rise at the member still at the old level)."""
    first, second, third = (m.shop for m in TEE.members)
    change = outside_change(TEE, [38, 38, 40], 40, {second}, 1.0)
    assert change is not None
    assert (first, -2, 38) == (change.shop, change.delta, change.pool)
    assert outside_change(TEE, [38, 38, 40], 40, {first, second}, 1.0) is None
    assert third not in {first, second}


def test_even_unknown_or_ambiguous_levels_are_no_outside_change() -> None:
    """An even group, no even level seen yet, two members moved on their own, or an unknown
    level name no single changed member."""
    cases: list[tuple[list[int | None], int | None]] = [
        ([40, 40, 40], 40), ([40, 38, 40], None), ([40, 38, 37], 40), ([None, 40, 40], 40)
    ]  # fmt: skip
    assert [None] * 4 == [outside_change(TEE, found, even, set(), 0.0) for found, even in cases]


def test_the_journal_finds_the_last_change_of_a_group() -> None:
    """``last`` is the newest change of that group, whatever other groups did since."""
    journal = Journal()
    first = Change("sale", "tee-black-m", "cb-taipei", -1, 39, 1.0)
    second = Change("sale", "tee-black-m", "cb-tainan", -2, 37, 2.0)
    journal.add(first)
    journal.add(second)
    journal.add(Change("sale", "cap-navy", "cb-taipei", -1, 39, 3.0))
    assert second is journal.last("tee-black-m")


def test_settled_means_every_member_at_target_with_no_echo_outstanding() -> None:
    """A member off its target or with an un-echoed write keeps the bridge unsettled."""
    calm = {"observed": 40, "target_level": 40, "unechoed": []}
    waiting = {"observed": 40, "target_level": 40, "unechoed": [{"value": 38}]}
    behind = {"observed": 40, "target_level": 38, "unechoed": []}
    assert [True, False, False] == [
        settled([{"members": [calm, other]}]) for other in (calm, waiting, behind)
    ]
