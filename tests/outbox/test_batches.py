"""Outbox contract, batched results: mark_done_many and mark_retry_many, on both stores."""

from __future__ import annotations

from bridge.outbox import OutboxStore, Status
from tests.outbox.helpers import T0, add, write

LEASE = 30.0


async def test_mark_done_many_marks_every_leased_row_at_once(store: OutboxStore) -> None:
    """One call marks each row done, clears its lease, sets done_at and returns the ids."""
    results = await add(store, *(write(f"variant:{n}", f"k{n}") for n in range(5)))
    ids = [r.id for r in results]
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    assert set(ids) == await store.mark_done_many(ids, "relay-1", T0 + 1)
    rows = [await store.get(i) for i in ids]
    summary = [(r.status, r.lease_owner, r.lease_until, r.done_at) for r in rows if r is not None]
    assert [(Status.DONE, None, None, T0 + 1)] * 5 == summary


async def test_mark_done_many_refuses_rows_it_does_not_hold(store: OutboxStore) -> None:
    """Rows of another relay's lease, or not in flight, are left alone; the others are marked."""
    mine, theirs, pending = await add(
        store, write("variant:1", "k1"), write("variant:2", "k2", shop="shop-b"),
        write("variant:3", "k3", shop="shop-c"),
    )  # fmt: skip
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    await store.claim("shop-b", "relay-2", 10, LEASE, T0)
    marked = await store.mark_done_many([mine.id, theirs.id, pending.id], "relay-1", T0 + 1)
    assert {mine.id} == marked
    statuses = {i: (await store.get(i)) for i in (theirs.id, pending.id)}
    assert [Status.IN_FLIGHT, Status.PENDING] == [
        r.status for r in statuses.values() if r is not None
    ]


async def test_mark_done_many_never_marks_a_row_twice(store: OutboxStore) -> None:
    """A row already done, or re-claimed by another relay after its lease ran out, is refused."""
    first, second = await add(store, write("variant:1", "k1"), write("variant:2", "k2"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    assert {first.id} == await store.mark_done_many([first.id], "relay-1", T0 + 1)
    await store.claim("shop-a", "relay-2", 10, LEASE, T0 + LEASE)  # second's lease ran out
    assert set() == await store.mark_done_many([first.id, second.id], "relay-1", T0 + LEASE + 1)
    assert {second.id} == await store.mark_done_many([second.id], "relay-2", T0 + LEASE + 1)
    done = await store.get(first.id)
    assert done is not None
    assert (Status.DONE, T0 + 1) == (done.status, done.done_at)


async def test_batched_results_of_no_rows_change_nothing(store: OutboxStore) -> None:
    """Empty batches return no ids."""
    assert set() == await store.mark_done_many([], "relay-1", T0)
    assert set() == await store.mark_retry_many([], "relay-1", T0, "none", T0)


async def test_mark_retry_many_puts_rows_back_unsent_without_an_attempt(
    store: OutboxStore,
) -> None:
    """sent=False returns every row pending at one due time, its attempt count unchanged."""
    results = await add(store, *(write(f"variant:{n}", f"k{n}") for n in range(3)))
    ids = [r.id for r in results]
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    returned = await store.mark_retry_many(ids, "relay-1", T0 + 5, "not sent", T0, sent=False)
    assert set(ids) == returned
    rows = [await store.get(i) for i in ids]
    summary = [(r.status, r.attempts, r.next_attempt_at, r.last_error, r.lease_owner)
               for r in rows if r is not None]  # fmt: skip
    assert [(Status.PENDING, 0, T0 + 5, "not sent", None)] * 3 == summary
    again = await store.claim("shop-a", "relay-1", 10, LEASE, T0 + 5)
    assert [1, 1, 1] == [r.attempts for r in again]


async def test_mark_retry_many_counts_a_sent_attempt_and_keeps_first_sent(
    store: OutboxStore,
) -> None:
    """sent=True keeps the attempt; first_sent_at stays the first claim's time."""
    (result,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    assert {result.id} == await store.mark_retry_many([result.id], "relay-1", T0 + 9, "503", T0)
    (row,) = await store.claim("shop-a", "relay-1", 10, LEASE, T0 + 9)
    async with store.transaction() as tx:
        first = await tx.first_sent([result.id])
    assert (2, {result.id: T0}) == (row.attempts, first)


async def test_mark_retry_many_supersedes_an_outdated_row(store: OutboxStore) -> None:
    """A row put back while a newer set_stock of its target waits is superseded, not pending."""
    (old,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    (new,) = await add(store, write("variant:1", "k2"), now=T0 + 1)
    assert {old.id} == await store.mark_retry_many([old.id], "relay-1", T0 + 2, "x", T0 + 2)
    rows = {i: await store.get(i) for i in (old.id, new.id)}
    assert [Status.SUPERSEDED, Status.PENDING] == [r.status for r in rows.values() if r is not None]


async def test_mark_retry_many_refuses_another_relays_rows(store: OutboxStore) -> None:
    """Only rows leased by the caller go back; another relay's stay in flight."""
    mine, theirs = await add(store, write("variant:1", "k1"), write("variant:2", "k2", shop="b"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    await store.claim("b", "relay-2", 10, LEASE, T0)
    assert {mine.id} == await store.mark_retry_many(
        [mine.id, theirs.id], "relay-1", T0 + 1, "x", T0 + 1, sent=False
    )
    row = await store.get(theirs.id)
    assert row is not None
    assert (Status.IN_FLIGHT, "relay-2") == (row.status, row.lease_owner)
