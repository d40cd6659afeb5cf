"""Outbox contract, part 4: per-shop keys, conflicts, validation, savepoints, supersede, priority."""

from __future__ import annotations

import pytest

from bridge.outbox import AddResult, InvalidWrite, NewWrite, OutboxStore, OutboxTx, Status
from tests.outbox.helpers import T0, add, write

LEASE = 30.0


class Poison(Exception):
    """A record the consumer cannot handle."""


async def poisoned(tx: OutboxTx, *writes: NewWrite) -> None:
    """Add ``writes`` inside a savepoint, then fail as a poison record would."""
    async with tx.savepoint() as inner:
        for item in writes:
            await inner.add(item, T0)
        await inner.put_state("pools", "g", 1)
        raise Poison


async def statuses(store: OutboxStore) -> dict[int, Status]:
    return {r.id: r.status for r in await store.list_rows(limit=1000)}


async def test_same_key_in_two_shops_is_two_rows(store: OutboxStore) -> None:
    """An idempotency key is unique per shop: another shop's write with the same key is kept."""
    a, b = await add(
        store, write("variant:1", "k", shop="shop-a"), write("variant:1", "k", shop="shop-b")
    )
    assert (False, False) == (a.duplicate, b.duplicate)
    rows = await store.list_rows()
    assert [("shop-b", "k"), ("shop-a", "k")] == [(r.shop, r.idempotency_key) for r in rows]


@pytest.mark.parametrize(
    "changed",
    [
        {"payload": {"quantity": 2}},
        {"target": "variant:2"},
        {"kind": "set_price"},
    ],
    ids=["payload", "target", "kind"],
)
async def test_same_key_with_other_content_is_a_conflict(
    store: OutboxStore, changed: dict[str, object]
) -> None:
    """A known (shop, key) with different kind, target or payload is a conflict; nothing inserted."""
    (first,) = await add(store, write("variant:1", "k", payload={"quantity": 1}))
    fields = {"target": "variant:1", "key": "k", "payload": {"quantity": 1}} | changed
    (again,) = await add(store, write(**fields), now=T0 + 5)  # type: ignore[arg-type]
    assert AddResult(id=first.id, conflict=True) == again
    assert [first.id] == [r.id for r in await store.list_rows()]


@pytest.mark.parametrize(
    "key",
    ["bad\x00key", "k" * 10_000, "", "caf\u00e9", "tab\tkey"],
    ids=["nul", "10000-chars", "empty", "non-ascii", "control"],
)
async def test_invalid_keys_are_refused_before_any_sql(store: OutboxStore, key: str) -> None:
    """A key that is not 1-200 printable ASCII characters raises InvalidWrite; the tx goes on."""
    async with store.transaction() as tx:
        with pytest.raises(InvalidWrite, match="idempotency_key"):
            await tx.add(write("variant:1", key), T0)
        kept = await tx.add(write("variant:2", "good-key"), T0)
    assert [kept.id] == [r.id for r in await store.list_rows()]


async def test_the_longest_valid_key_is_accepted(store: OutboxStore) -> None:
    """200 printable ASCII characters, spaces and punctuation included, are a valid key."""
    key = ("sync: ~!" * 25)[:200]
    (result,) = await add(store, write("variant:1", key))
    row = await store.get(result.id)
    assert row is not None
    assert key == row.idempotency_key


@pytest.mark.parametrize(
    "bad",
    [
        {"payload": {"note": "a\x00b"}},
        {"payload": {"a\x00": 1}},
        {"payload": {"items": [{"x": "\x00"}]}},
        {"target": "variant:\x00"},
        {"shop": ""},
        {"priority": 2**40},
    ],
    ids=["payload-value", "payload-key", "payload-nested", "target", "shop", "priority"],
)
async def test_values_the_database_would_refuse_are_invalid_writes(
    store: OutboxStore, bad: dict[str, object]
) -> None:
    """NULs anywhere, empty names and out-of-range priorities raise InvalidWrite, not a DB error."""
    fields: dict[str, object] = {
        "shop": "shop-a", "kind": "note", "target": "variant:1", "payload": {"q": 1},
        "idempotency_key": "k", "priority": 0,
    } | bad  # fmt: skip
    async with store.transaction() as tx:
        with pytest.raises(InvalidWrite):
            await tx.add(NewWrite(**fields), T0)  # type: ignore[arg-type]
    assert [] == await store.list_rows()


async def test_savepoint_rolls_back_only_its_own_writes(store: OutboxStore) -> None:
    """write A, savepoint{write B; raise}, write C, commit: A and C exist, B does not."""
    async with store.transaction() as tx:
        a = await tx.add(write("variant:1", "a"), T0)
        with pytest.raises(Poison):
            await poisoned(tx, write("variant:2", "b"))
        c = await tx.add(write("variant:3", "c"), T0)
        assert None is await tx.get_state("pools", "g")
    assert [c.id, a.id] == [r.id for r in await store.list_rows()]
    assert ["a", "c"] == sorted(r.idempotency_key for r in await store.list_rows())


async def test_savepoints_nest_and_keep_what_succeeded(store: OutboxStore) -> None:
    """A failed inner savepoint leaves the outer one's writes; a clean savepoint keeps its own."""
    async with store.transaction() as tx:
        async with tx.savepoint() as outer:
            await outer.add(write("variant:1", "a"), T0)
            with pytest.raises(Poison):
                await poisoned(outer, write("variant:2", "b"))
        async with tx.savepoint() as clean:
            await clean.add(write("variant:3", "c"), T0)
    assert ["a", "c"] == sorted(r.idempotency_key for r in await store.list_rows())


async def test_a_rolled_back_key_can_be_added_again(store: OutboxStore) -> None:
    """A write undone by its savepoint leaves no trace: the same key is new afterwards."""
    async with store.transaction() as tx:
        with pytest.raises(Poison):
            await poisoned(tx, write("variant:1", "k"))
        again = await tx.add(write("variant:1", "k"), T0)
    assert (False, False) == (again.duplicate, again.conflict)


async def test_supersede_follows_the_write_not_its_kind(store: OutboxStore) -> None:
    """Any kind may supersede; a set_stock that does not supersede replaces nothing."""
    old_price, new_price = await add(
        store,
        write("variant:1", "p1", kind="set_price", supersedes=True),
        write("variant:1", "p2", kind="set_price", supersedes=True),
    )
    plain_old, plain_new = await add(
        store,
        write("variant:2", "s1", supersedes=False),
        write("variant:2", "s2", supersedes=False),
    )
    assert old_price.id == new_price.superseded
    assert None is plain_new.superseded
    assert {
        old_price.id: Status.SUPERSEDED, new_price.id: Status.PENDING,
        plain_old.id: Status.PENDING, plain_new.id: Status.PENDING,
    } == await statuses(store)  # fmt: skip


async def test_superseding_rows_of_other_kinds_are_left_alone(store: OutboxStore) -> None:
    """A superseding write replaces only rows of its own kind on the target."""
    stock, price = await add(
        store,
        write("variant:1", "s1"),
        write("variant:1", "p1", kind="set_price", supersedes=True),
    )
    assert None is price.superseded
    assert {stock.id: Status.PENDING, price.id: Status.PENDING} == await statuses(store)


async def test_rows_keep_superseding_and_priority(store: OutboxStore) -> None:
    """What a write says about superseding and priority is stored on its row."""
    a, b = await add(
        store,
        write("variant:1", "a", supersedes=True, priority=5),
        write("variant:2", "b", kind="note", priority=-1),
    )
    rows = {r.id: (r.superseding, r.priority) for r in await store.list_rows()}
    assert {a.id: (True, 5), b.id: (False, -1)} == rows


async def test_claim_takes_higher_priority_first(store: OutboxStore) -> None:
    """Within a shop, claim order is priority (highest first), then age."""
    low, mid, high, low2 = await add(
        store,
        write("variant:1", "k1"),
        write("variant:2", "k2", priority=1),
        write("variant:3", "k3", priority=9),
        write("variant:4", "k4"),
    )
    claimed = await store.claim("shop-a", "relay", 2, LEASE, T0)
    assert [high.id, mid.id] == [r.id for r in claimed]
    assert [low.id, low2.id] == [r.id for r in await store.claim("shop-a", "relay", 3, LEASE, T0)]


async def test_priority_never_overtakes_an_older_live_row_of_its_target(store: OutboxStore) -> None:
    """A high-priority row waits behind an older live row of the same target."""
    older, urgent, other = await add(
        store,
        write("order:1", "k1", kind="note"),
        write("order:1", "k2", kind="note", priority=9),
        write("order:2", "k3", kind="note"),
    )
    claimed = await store.claim("shop-a", "relay", 1, LEASE, T0)
    assert [older.id] == [r.id for r in claimed]
    assert [other.id] == [r.id for r in await store.claim("shop-a", "relay", 10, LEASE, T0)]
    assert True is await store.mark_done(older.id, "relay", T0 + 1)
    assert [urgent.id] == [r.id for r in await store.claim("shop-a", "relay", 10, LEASE, T0 + 1)]
