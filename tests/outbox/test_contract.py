"""Outbox contract, part 1: adding, superseding, claiming, leases, per-target order, results."""

from __future__ import annotations

import asyncio

from bridge.outbox import AddResult, OutboxStore, Status
from tests.outbox.conftest import OpenStore
from tests.outbox.helpers import T0, add, write

LEASE = 30.0


async def statuses(store: OutboxStore) -> dict[int, Status]:
    return {r.id: r.status for r in await store.list_rows(limit=1000)}


async def test_add_inserts_a_pending_row_due_now(store: OutboxStore) -> None:
    """A new write is a pending row, due at the `now` it was added, with its payload intact."""
    (result,) = await add(store, write("variant:5001", "k1", payload={"quantity": 7}), now=T0)
    row = await store.get(result.id)
    assert row is not None
    expected = ("shop-a", "set_stock", "variant:5001", {"quantity": 7}, "k1", Status.PENDING)
    assert expected == (row.shop, row.kind, row.target, dict(row.payload), row.idempotency_key,
                        row.status)  # fmt: skip
    assert (0, T0, T0, T0, None) == (
        row.attempts, row.next_attempt_at, row.created_at, row.updated_at, row.supersedes
    )  # fmt: skip


async def test_duplicate_key_changes_nothing(store: OutboxStore) -> None:
    """A known (shop, idempotency key) with the same content is a duplicate, not inserted."""
    (first,) = await add(store, write("variant:1", "same-key", payload={"quantity": 1}))
    (again,) = await add(store, write("variant:1", "same-key", payload={"quantity": 1}), now=T0 + 5)
    assert AddResult(id=first.id, duplicate=True) == again
    rows = await store.list_rows()
    assert [(first.id, "variant:1", Status.PENDING)] == [(r.id, r.target, r.status) for r in rows]


async def test_set_stock_supersedes_pending_row_of_same_target(store: OutboxStore) -> None:
    """A newer set_stock replaces a pending one for the same (shop, target) and records it."""
    old, new = await add(store, write("variant:5", "k1"), write("variant:5", "k2"))
    assert old.id == new.superseded
    assert {old.id: Status.SUPERSEDED, new.id: Status.PENDING} == await statuses(store)
    row = await store.get(new.id)
    assert row is not None
    assert old.id == row.supersedes


async def test_supersede_leaves_other_targets_shops_and_kinds_alone(store: OutboxStore) -> None:
    """Only superseding rows of the same shop, target and kind are superseded."""
    results = await add(
        store,
        write("variant:5", "k1"),
        write("variant:6", "k2"),
        write("variant:5", "k3", shop="shop-b"),
        write("variant:5", "k4", kind="set_price"),
        write("variant:5", "k5", kind="set_price"),
    )
    assert [None] * 5 == [r.superseded for r in results]
    assert {r.id: Status.PENDING for r in results} == await statuses(store)


async def test_in_flight_row_is_not_superseded(store: OutboxStore) -> None:
    """A row already being sent stays in flight; the newer row waits behind it."""
    (old,) = await add(store, write("variant:5", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    (new,) = await add(store, write("variant:5", "k2"), now=T0 + 1)
    assert None is new.superseded
    assert {old.id: Status.IN_FLIGHT, new.id: Status.PENDING} == await statuses(store)


async def test_first_sent_is_the_first_claim_and_survives_retries(store: OutboxStore) -> None:
    """first_sent: when a row was first claimed (kept across a retry and a later claim); None
    for rows never claimed, superseded ones included; unknown ids are left out."""
    first, second = await add(store, write("variant:1", "k1"), write("variant:2", "k2"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    await store.mark_retry(second.id, "relay-1", T0 + 5, "503", T0 + 1)
    await store.claim("shop-a", "relay-2", 10, LEASE, T0 + 10)
    old, new = await add(store, write("variant:3", "k3"), write("variant:3", "k4"), now=T0 + 11)
    async with store.transaction() as tx:
        found = await tx.first_sent([first.id, second.id, old.id, new.id, 999_999])
    assert {first.id: T0, second.id: T0, old.id: None, new.id: None} == found
    assert Status.SUPERSEDED == (await statuses(store))[old.id]


async def test_claim_takes_due_rows_oldest_first_up_to_limit(store: OutboxStore) -> None:
    """Claim leases the oldest due rows of the shop, no more than `limit`."""
    results = await add(store, *(write(f"variant:{i}", f"k{i}") for i in range(5)))
    await add(store, write("variant:9", "other-shop", shop="shop-b"))
    claimed = await store.claim("shop-a", "relay-1", 3, LEASE, T0)
    assert [r.id for r in results[:3]] == [r.id for r in claimed]
    expected = [(Status.IN_FLIGHT, "relay-1", T0 + LEASE, 1, T0)] * 3
    assert expected == [
        (r.status, r.lease_owner, r.lease_until, r.attempts, r.updated_at) for r in claimed
    ]


async def test_claim_skips_rows_not_yet_due(store: OutboxStore) -> None:
    """A row whose next attempt lies in the future is not claimed before then."""
    (result,) = await add(store, write("variant:1", "k1"), now=T0 + 60)
    assert [] == await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    assert [result.id] == [r.id for r in await store.claim("shop-a", "relay-1", 10, LEASE, T0 + 60)]


async def test_live_lease_is_not_claimable_expired_lease_is(store: OutboxStore) -> None:
    """Lease expiry is the reaper: an abandoned in-flight row is claimed again, attempts + 1."""
    (result,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    assert [] == await store.claim("shop-a", "relay-2", 10, LEASE, T0 + LEASE - 1)
    again = await store.claim("shop-a", "relay-2", 10, LEASE, T0 + LEASE)
    assert [(result.id, "relay-2", 2)] == [(r.id, r.lease_owner, r.attempts) for r in again]


async def test_results_are_refused_for_anyone_but_the_lease_owner(store: OutboxStore) -> None:
    """mark_done/retry/dead succeed only for the relay that holds the row's lease."""
    (result,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    refused = [
        await store.mark_done(result.id, "relay-2", T0 + 1),
        await store.mark_retry(result.id, "relay-2", T0 + 10, "boom", T0 + 1),
        await store.mark_dead(result.id, "relay-2", "boom", T0 + 1),
    ]
    assert [False, False, False] == refused
    row = await store.get(result.id)
    assert row is not None
    assert (Status.IN_FLIGHT, "relay-1") == (row.status, row.lease_owner)


async def test_relay_whose_lease_was_taken_over_cannot_overwrite(store: OutboxStore) -> None:
    """After another relay re-claims an expired row, the first relay's result is refused."""
    (result,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    await store.claim("shop-a", "relay-2", 10, LEASE, T0 + LEASE)
    assert False is await store.mark_done(result.id, "relay-1", T0 + LEASE + 1)
    assert True is await store.mark_done(result.id, "relay-2", T0 + LEASE + 1)


async def test_a_row_put_back_unsent_keeps_its_attempt_count(store: OutboxStore) -> None:
    """A claim returned with sent=False is not an attempt; a failed send (sent=True) is."""
    (result,) = await add(store, write("variant:1", "k1"))
    for i in range(3):  # claimed and put back unsent three times
        (row,) = await store.claim("shop-a", "relay-1", 10, LEASE, T0 + i)
        assert 1 == row.attempts
        assert True is await store.mark_retry(
            row.id, "relay-1", T0 + i, "no slot", T0 + i, sent=False
        )
    (row,) = await store.claim("shop-a", "relay-1", 10, LEASE, T0 + 10)
    assert 1 == row.attempts
    assert True is await store.mark_retry(row.id, "relay-1", T0 + 10, "HTTP 503", T0 + 10)
    (row,) = await store.claim("shop-a", "relay-1", 10, LEASE, T0 + 20)
    assert (result.id, 2) == (row.id, row.attempts)


async def test_mark_done_retry_dead_record_the_outcome(store: OutboxStore) -> None:
    """Each result sets its status, clears the lease and keeps the error."""
    done, retry, dead = await add(
        store, write("variant:1", "k1"), write("variant:2", "k2"), write("variant:3", "k3")
    )
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    assert True is await store.mark_done(done.id, "relay-1", T0 + 1)
    assert True is await store.mark_retry(retry.id, "relay-1", T0 + 20, "HTTP 503", T0 + 1)
    assert True is await store.mark_dead(dead.id, "relay-1", "HTTP 404", T0 + 1)
    rows = {r.id: r for r in await store.list_rows()}
    summary = [
        (rows[i].status, rows[i].lease_owner, rows[i].lease_until, rows[i].last_error,
         rows[i].done_at, rows[i].updated_at)
        for i in (done.id, retry.id, dead.id)
    ]  # fmt: skip
    assert [
        (Status.DONE, None, None, None, T0 + 1, T0 + 1),
        (Status.PENDING, None, None, "HTTP 503", None, T0 + 1),
        (Status.DEAD, None, None, "HTTP 404", None, T0 + 1),
    ] == summary
    assert T0 + 20 == rows[retry.id].next_attempt_at


async def test_retry_of_an_outdated_set_stock_supersedes_it(store: OutboxStore) -> None:
    """A failed set_stock that a newer pending one replaces is not sent again."""
    (old,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    (new,) = await add(store, write("variant:1", "k2"), now=T0 + 1)
    assert True is await store.mark_retry(old.id, "relay-1", T0 + 5, "HTTP 503", T0 + 2)
    assert {old.id: Status.SUPERSEDED, new.id: Status.PENDING} == await statuses(store)


async def test_newer_row_waits_while_older_of_same_target_is_in_flight(store: OutboxStore) -> None:
    """Per-target order: a target's next row is claimed only after the one in flight finishes."""
    (first,) = await add(store, write("variant:1", "k1"))
    await store.claim("shop-a", "relay-1", 10, LEASE, T0)
    second, other = await add(store, write("variant:1", "k2"), write("variant:2", "k3"), now=T0 + 1)
    claimed = await store.claim("shop-a", "relay-2", 10, LEASE, T0 + 1)
    assert [other.id] == [r.id for r in claimed]
    await store.mark_done(first.id, "relay-1", T0 + 2)
    assert [second.id] == [r.id for r in await store.claim("shop-a", "relay-2", 10, LEASE, T0 + 2)]


async def test_one_row_per_target_per_claim_even_for_other_kinds(store: OutboxStore) -> None:
    """Rows that do not supersede are claimed one at a time per target, in id order."""
    first, second = await add(
        store, write("order:9", "k1", kind="note"), write("order:9", "k2", kind="note")
    )
    assert [first.id] == [r.id for r in await store.claim("shop-a", "r", 10, LEASE, T0)]
    await store.mark_retry(first.id, "r", T0 + 60, "HTTP 500", T0)
    assert [] == await store.claim("shop-a", "r", 10, LEASE, T0 + 1)
    assert [first.id] == [r.id for r in await store.claim("shop-a", "r", 10, LEASE, T0 + 60)]
    await store.mark_done(first.id, "r", T0 + 61)
    assert [second.id] == [r.id for r in await store.claim("shop-a", "r", 10, LEASE, T0 + 61)]


async def test_due_shops_lists_shops_with_claimable_rows(store: OutboxStore) -> None:
    """due_shops names exactly the shops for which claim would return rows."""
    await add(store, write("v:1", "a1", shop="a"), write("v:1", "d1", shop="d"))
    await add(store, write("v:1", "c1", shop="c"), now=T0 - 10)
    await add(store, write("v:1", "e1", shop="e"))
    await store.claim("c", "relay", 10, 5.0, T0 - 10)  # lease ended at T0 - 5
    await store.claim("d", "relay", 10, LEASE, T0)
    await store.claim("e", "relay", 10, LEASE, T0)
    await add(store, write("v:1", "e2", shop="e"))  # waits behind e's row in flight
    async with store.transaction() as tx:
        await tx.add(write("v:1", "b1", shop="b"), T0 + 60)
    assert ["a", "c"] == await store.due_shops(T0)


async def test_concurrent_claims_by_two_processes_never_share_a_row(
    store: OutboxStore, open_other: OpenStore
) -> None:
    """Two relays claiming at once split the rows between them, each row exactly once."""
    results = await add(store, *(write(f"variant:{i}", f"k{i}") for i in range(60)))
    other = await open_other()
    batches = await asyncio.gather(
        *(s.claim("shop-a", f"relay-{n}", 5, LEASE, T0) for n, s in enumerate([store, other] * 8))
    )
    claimed = sorted(r.id for batch in batches for r in batch)
    assert sorted(r.id for r in results) == claimed
