"""One test per rule of the inventory-sync core (docs/inventory-sync.md)."""

from __future__ import annotations

import json

import pytest

from consumers.inventory_sync.orders import OrderAction, OrderLine, apply_order
from consumers.inventory_sync.pool import (
    PlannedWrite,
    drop_write,
    observe,
    plan,
    reconcile,
    record_writes,
    recount,
)
from consumers.inventory_sync.state import (
    GroupState,
    Kind,
    MemberSpec,
    PendingWrite,
    StateError,
    UnknownMember,
    member_key,
    new_group,
)

A = member_key("cb-taipei", "variant:5001")
B = member_key("bento-bkk", "variant:753758")
C = member_key("std-shop", "group:77")
TIMEOUT = 300.0


def group(*specs: MemberSpec) -> GroupState:
    return new_group("tee", specs or (MemberSpec(A), MemberSpec(B), MemberSpec(C)))


def synced(pool: int = 10, *specs: MemberSpec) -> GroupState:
    """A group whose every member was observed at ``pool`` (first contact + baselines)."""
    state = group(*specs)
    for key in sorted(state.members):
        state, _ = reconcile(state, key, pool, 0.0, echo_timeout=TIMEOUT)
    return state


def write(state: GroupState, now: float = 1.0, first_id: int = 100) -> GroupState:
    """Plan and record the writes as the caller would, with made-up outbox ids."""
    planned = plan(state)
    return record_writes(state, [(p, first_id + i, None) for i, p in enumerate(planned)], now)


def targets(state: GroupState) -> dict[str, int]:
    return {p.member: p.quantity for p in plan(state)}


def test_member_key_joins_shop_and_target() -> None:
    """A member is named "{shop}/{target}"."""
    assert "cb-taipei/variant:5001" == A


def test_member_key_refuses_a_slash_in_the_shop() -> None:
    """A shop id with '/' would make keys ambiguous, so it is refused."""
    with pytest.raises(StateError, match="contain no '/'"):
        member_key("a/b", "variant:1")


def test_unknown_member_is_named() -> None:
    """An input for a member outside the group raises UnknownMember naming it."""
    with pytest.raises(UnknownMember, match="nobody/variant:1"):
        observe(synced(), "nobody/variant:1", 3, None, 1.0, echo_timeout=TIMEOUT)


def test_first_contact_takes_the_level_and_pushes_it() -> None:
    """The first level seen by a group becomes the pool and is written to the others."""
    state, out = observe(group(), A, 42, None, 1.0, echo_timeout=TIMEOUT)
    assert (Kind.FIRST_CONTACT, 42) == (out.kind, state.pool)
    assert {B: 42, C: 42} == targets(state)


def test_unseen_member_without_previous_is_a_baseline() -> None:
    """A member's first level while the pool exists is its baseline: no delta, a write if off."""
    state, _ = observe(group(), A, 42, None, 1.0, echo_timeout=TIMEOUT)
    state, out = observe(state, B, 40, None, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.BASELINE, 0, 42) == (out.kind, out.delta, state.pool)
    assert 42 == targets(state)[B]


def test_unseen_member_with_previous_counts_the_change() -> None:
    """An unseen member reporting old and new level still contributes new - old."""
    state, _ = observe(group(), A, 42, None, 1.0, echo_timeout=TIMEOUT)
    state, out = observe(state, B, 39, 40, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.EXTERNAL, -1, 41) == (out.kind, out.delta, state.pool)


def test_external_change_without_previous_uses_the_observed_level() -> None:
    """A sale on a platform without old levels moves the pool by level - observed."""
    state, out = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    assert (Kind.EXTERNAL, -3, 7) == (out.kind, out.delta, state.pool)
    assert {B: 7, C: 7} == targets(state)


def test_external_change_with_previous_equal_to_observed() -> None:
    """new - old is the delta when old is the level we observed."""
    state, out = observe(synced(10), B, 8, 10, 1.0, echo_timeout=TIMEOUT)
    assert (Kind.EXTERNAL, -2, 8) == (out.kind, out.delta, state.pool)


def test_previous_from_missed_changes_falls_back_to_observed() -> None:
    """An old level we never saw means we missed changes: level - observed counts them all."""
    state, out = observe(synced(10), B, 7, 9, 1.0, echo_timeout=TIMEOUT)
    assert (-3, 7) == (out.delta, state.pool)


def test_echo_settles_and_moves_nothing() -> None:
    """Our write coming back is an echo: pending cleared, pool and plan unchanged."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    state, out = observe(state, B, 7, 10, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.ECHO, 0, 7, (100,)) == (out.kind, out.delta, state.pool, out.settled)
    assert () == state.members[B].pending
    assert {} == targets(state)


def test_echo_of_a_later_write_settles_the_older_ones() -> None:
    """A skipped echo: matching a later write settles every older one too."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)
    state, _ = observe(state, A, 5, None, 2.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=200)
    assert (7, 5) == tuple(p.value for p in state.members[B].pending)
    state, out = observe(state, B, 5, None, 3.0, echo_timeout=TIMEOUT)
    assert (Kind.ECHO, (100, 200), 5) == (out.kind, out.settled, state.pool)


def test_a_level_equal_to_a_never_sent_write_is_a_sale_not_its_echo() -> None:
    """Two shops sell 1 at once: the second sale's level equals the write queued for it, but
    that write was never sent (the outbox says so), so it is a sale and both count."""
    state, _ = observe(synced(10), A, 9, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)  # 9 queued for B (id 100) and C (id 101), not sent yet
    sent: dict[int, float | None] = {100: None, 101: None}
    state, out = observe(state, B, 9, None, 1.1, echo_timeout=TIMEOUT, sent=sent, seen_at=1.1)
    assert (Kind.EXTERNAL, -1, 8) == (out.kind, out.delta, state.pool)
    assert {A: 8, B: 8, C: 8} == targets(state)


def test_a_level_seen_before_the_equal_write_was_sent_is_a_sale() -> None:
    """The write to B was sent at 1.5 but B's level arrived at 1.2: it cannot be our echo."""
    state, _ = observe(synced(10), A, 9, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)
    sent: dict[int, float | None] = {100: 1.5, 101: 1.5}
    state, out = observe(state, B, 9, None, 1.6, echo_timeout=TIMEOUT, sent=sent, seen_at=1.2)
    assert (Kind.EXTERNAL, -1, 8) == (out.kind, out.delta, state.pool)


def test_a_level_equal_to_a_sent_write_is_its_echo() -> None:
    """The same level seen after the write was sent settles it as our echo."""
    state, _ = observe(synced(10), A, 9, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)
    sent: dict[int, float | None] = {100: 1.05, 101: None}
    state, out = observe(state, B, 9, None, 1.1, echo_timeout=TIMEOUT, sent=sent, seen_at=1.1)
    assert (Kind.ECHO, 9, (100,)) == (out.kind, state.pool, out.settled)


def test_redelivery_of_the_observed_level_is_a_no_op() -> None:
    """The same level again, with nothing pending, changes nothing."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    again, out = observe(state, A, 7, None, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.DUPLICATE, state) == (out.kind, again)


def test_redelivery_with_a_previous_matching_a_pending_write_is_a_no_op() -> None:
    """A redelivered old->new body is not re-read as "our write landed, then a change"."""
    state, _ = observe(synced(10), B, 9, 10, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    state, _ = observe(state, A, 11, None, 2.0, echo_timeout=TIMEOUT)  # restock: pool back to 10
    state = write(state)
    assert 10 == state.members[B].expected
    again, out = observe(state, B, 9, 10, 3.0, echo_timeout=TIMEOUT)
    assert (Kind.DUPLICATE, 10) == (out.kind, again.pool)


def test_race_our_write_lands_then_a_sale() -> None:
    """Write 7 lands at B, then B sells 1: the sale counts once (echo, then -1)."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    state, echo = observe(state, B, 7, 10, 2.0, echo_timeout=TIMEOUT)
    state, sale = observe(state, B, 6, 7, 3.0, echo_timeout=TIMEOUT)
    assert (Kind.ECHO, Kind.EXTERNAL, 6) == (echo.kind, sale.kind, state.pool)
    assert {A: 6, C: 6} == targets(state)


def test_race_our_write_lands_then_a_sale_with_the_echo_lost() -> None:
    """old_stock equal to our write shows it landed: the delta is new - old, the write settles."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    state, sale = observe(state, B, 6, 7, 3.0, echo_timeout=TIMEOUT)
    assert (Kind.EXTERNAL, -1, 6, (100,)) == (sale.kind, sale.delta, state.pool, sale.settled)


def test_race_a_sale_then_our_write_overwrites_it() -> None:
    """B sells 1 then our 7 overwrites it: the sale counts once and B is rewritten to 6."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    state, sale = observe(state, B, 9, 10, 2.0, echo_timeout=TIMEOUT)
    state, echo = observe(state, B, 7, 9, 3.0, echo_timeout=TIMEOUT)
    assert (Kind.EXTERNAL, Kind.ECHO, 6) == (sale.kind, echo.kind, state.pool)
    assert 6 == targets(state)[B]


def test_supersede_removes_the_replaced_write() -> None:
    """A superseded row is never sent, so its value leaves the pending writes."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)  # B gets row 100, C row 101
    state, _ = observe(state, A, 5, None, 2.0, echo_timeout=TIMEOUT)
    planned = {p.member: p for p in plan(state)}
    state = record_writes(state, [(planned[B], 200, 100), (planned[C], 201, None)], 2.0)
    assert (PendingWrite(5, 200, 2.0),) == state.members[B].pending
    assert (101, 201) == tuple(p.outbox_id for p in state.members[C].pending)


def test_drop_write_forgets_a_dead_row() -> None:
    """A row that went dead is forgotten, so the member is planned again."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)
    state = drop_write(state, B, 100)
    assert {B: 7} == targets(state)


def test_echo_timeout_drops_stale_writes() -> None:
    """A write never echoed within echo_timeout is dropped when its member is next looked at."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, now=1.0, first_id=100)
    state, out = reconcile(state, B, 10, 1.0 + TIMEOUT + 1, echo_timeout=TIMEOUT)
    assert (Kind.DUPLICATE, (100,)) == (out.kind, out.expired)
    assert {B: 7} == targets(state)


def test_a_late_echo_is_matched_before_its_write_expires() -> None:
    """An echo arriving after echo_timeout is still recognised on that look, not counted."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, now=1.0, first_id=100)
    state, out = observe(state, B, 7, 10, 1.0 + TIMEOUT + 1, echo_timeout=TIMEOUT)
    assert (Kind.ECHO, (100,), 7) == (out.kind, out.settled, state.pool)


def test_orders_debit_once_whichever_of_created_and_paid_comes_first() -> None:
    """created then paid debits once."""
    state = synced(10, MemberSpec(A, orders=True), MemberSpec(B))
    state, line, first = apply_order(state, None, A, OrderAction.PAID, 2, 1.0, echo_timeout=TIMEOUT)
    state, line, second = apply_order(
        state, line, A, OrderAction.CREATED, 2, 2.0, echo_timeout=TIMEOUT
    )
    assert (Kind.ORDER, Kind.DUPLICATE, 8) == (first.kind, second.kind, state.pool)
    assert {B: 8} == targets(state)


def test_orders_credit_once() -> None:
    """cancelled then returned credits the debited units once."""
    state = synced(10, MemberSpec(A, orders=True), MemberSpec(B))
    state, line, _ = apply_order(state, None, A, OrderAction.CREATED, 2, 1.0, echo_timeout=TIMEOUT)
    state, line, _ = apply_order(
        state, line, A, OrderAction.CANCELLED, 2, 2.0, echo_timeout=TIMEOUT
    )
    state, line, out = apply_order(
        state, line, A, OrderAction.RETURNED, 2, 3.0, echo_timeout=TIMEOUT
    )
    assert (Kind.DUPLICATE, 10, OrderLine(2, True)) == (out.kind, state.pool, line)


def test_orders_cancel_without_debit_changes_nothing_and_closes_the_line() -> None:
    """A cancellation of a line never debited credits nothing; a late paid then debits nothing."""
    state = synced(10, MemberSpec(A, orders=True), MemberSpec(B))
    state, line, out = apply_order(
        state, None, A, OrderAction.CANCELLED, 2, 1.0, echo_timeout=TIMEOUT
    )
    state, line, late = apply_order(state, line, A, OrderAction.PAID, 2, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.DUPLICATE, Kind.DUPLICATE, 10) == (out.kind, late.kind, state.pool)


def test_order_during_our_write_rewrites_the_orders_member() -> None:
    """An order while our write to that member may be in flight forces a rewrite of it."""
    state = synced(10, MemberSpec(A, orders=True), MemberSpec(B))
    state, _ = observe(state, B, 9, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    state, _, _ = apply_order(state, None, A, OrderAction.CREATED, 1, 2.0, echo_timeout=TIMEOUT)
    assert {A: 8, B: 8} == targets(state)


def test_order_line_json_round_trip() -> None:
    """An order line survives JSON."""
    line = OrderLine(debited=3, closed=True)
    assert line == OrderLine.from_json(json.loads(json.dumps(line.to_json())))


def test_recount_sets_the_pool_and_pushes_to_every_member() -> None:
    """sync-groups set writes every member, even those already showing the value."""
    state, out = recount(synced(10), 10, 1.0)
    assert (Kind.RECOUNT, {A: 10, B: 10, C: 10}) == (out.kind, targets(state))
    assert {} == targets(write(state))


def test_reconcile_difference_without_pending_is_drift() -> None:
    """A real level that differs with no write in flight is an external change, counted as drift."""
    state, out = reconcile(synced(10), B, 6, 1.0, echo_timeout=TIMEOUT)
    assert (Kind.DRIFT, -4, 6, 1) == (out.kind, out.delta, state.pool, state.members[B].drift_count)


def test_reconcile_with_a_write_in_flight_does_nothing() -> None:
    """A real level during our pending write is not drift."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state)
    after, out = reconcile(state, B, 9, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.IN_FLIGHT, state) == (out.kind, after)


def test_reconcile_matching_a_pending_write_settles_a_lost_echo() -> None:
    """A real level equal to our write means it landed and its echo was lost."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    state = write(state, first_id=100)
    state, out = reconcile(state, B, 7, 2.0, echo_timeout=TIMEOUT)
    assert (Kind.ECHO, (100,), 7) == (out.kind, out.settled, state.pool)


def test_oversold_pool_stays_negative_and_writes_zero() -> None:
    """Selling more than the pool keeps the negative pool; every member gets 0 as a sell-out."""
    state, out = observe(synced(2), A, -1, None, 1.0, echo_timeout=TIMEOUT)
    assert (True, -1) == (out.oversold, state.pool)
    assert [True, True, True] == [p.sell_out for p in plan(state)]
    assert {A: 0, B: 0, C: 0} == targets(state)


def test_buffer_keeps_units_back() -> None:
    """A member with buffer 2 is written pool - 2."""
    state = synced(10, MemberSpec(A), MemberSpec(B, buffer=2))
    assert {B: 8} == targets(state)


def test_sell_out_flag_only_on_zero() -> None:
    """sell_out is set exactly when the written quantity is 0."""
    state = synced(10, MemberSpec(A), MemberSpec(B, buffer=10), MemberSpec(C, buffer=9))
    assert {B: True, C: False} == {p.member: p.sell_out for p in plan(state)}


def test_json_round_trip() -> None:
    """A busy state survives to_json -> JSON text -> from_json unchanged."""
    state, _ = observe(
        synced(10, MemberSpec(A), MemberSpec(B, 1)), A, 7, None, 1.0, echo_timeout=TIMEOUT
    )
    state = write(state)
    text = json.dumps(state.to_json())
    assert state == GroupState.from_json(json.loads(text))


def test_from_json_names_the_bad_field() -> None:
    """A corrupt stored state is refused with the field named."""
    value = synced().to_json()
    value["members"][A]["observed"] = "ten"
    with pytest.raises(StateError, match=r"members\.cb-taipei/variant:5001\.observed"):
        GroupState.from_json(value)


def test_from_json_refuses_another_version() -> None:
    """A state written by another version is refused, not guessed at."""
    value = synced().to_json()
    value["version"] = 99
    with pytest.raises(StateError, match="version 99"):
        GroupState.from_json(value)


def test_idempotency_keys_are_deterministic_on_replay() -> None:
    """Replaying the same inputs on the same stored state plans the same keys; new writes get new ones."""
    state, _ = observe(synced(10), A, 7, None, 1.0, echo_timeout=TIMEOUT)
    stored = GroupState.from_json(state.to_json())
    assert plan(state) == plan(stored)
    keys = {p.idempotency_key for p in plan(state)}
    state = write(state)
    state, _ = observe(state, A, 5, None, 2.0, echo_timeout=TIMEOUT)
    assert set() == keys & {p.idempotency_key for p in plan(state)}
    assert "inventory-sync:tee:bento-bkk/variant:753758:0" == plan(stored)[0].idempotency_key


def test_a_burst_of_1000_changes_coalesces_into_one_write_per_member() -> None:
    """1,000 sales applied as one batch, then one plan: at most members - 1 writes."""
    state = synced(2000)
    for i in range(1000):
        state, _ = observe(state, A, 1999 - i, None, float(i), echo_timeout=TIMEOUT)
    planned = plan(state)
    assert [PlannedWrite(B, 1000, False, "inventory-sync:tee:bento-bkk/variant:753758:0", 0)] == [
        planned[0]
    ]
    assert 2 == len(planned)
