"""Group commit of done marks and lane releases: what arrives together is one statement."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import cast

from bridge.outbox.store import OutboxStore
from bridge.relay.marks import DoneMarks, LaneReleases

NOW = 1_700_000_000.0


class Store:
    """mark_done_many only: records each batch; ``gate`` holds a write until set."""

    def __init__(self, held: set[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.held = held
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = asyncio.Event()
        self.fail: Exception | None = None

    async def mark_done_many(self, ids: Sequence[int], owner: str, now: float) -> set[int]:
        self.batches.append(list(ids))
        self.writing.set()
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return set(ids) if self.held is None else set(ids) & self.held


def marks(store: Store) -> DoneMarks:
    return DoneMarks(cast(OutboxStore, store), "relay-1", lambda: NOW)


async def test_answers_of_one_moment_share_one_statement() -> None:
    """Three answers recorded together are one mark_done_many, each told its done time."""
    store = Store()
    done = marks(store)
    answers = await asyncio.gather(done.done(1), done.done(2), done.done(3))
    assert [NOW, NOW, NOW] == list(answers)
    assert [[1, 2, 3]] == store.batches


async def test_answers_during_a_write_go_in_the_next_one() -> None:
    """While one statement runs, new answers wait and are written together right after it."""
    store = Store()
    store.gate.clear()
    done = marks(store)
    first = asyncio.ensure_future(done.done(1))
    async with asyncio.timeout(5):
        await store.writing.wait()
    later = asyncio.gather(done.submit(2), done.submit(3))  # queued while the first is held
    assert 2 == done.queued
    store.gate.set()
    async with asyncio.timeout(5):
        assert [NOW, [NOW, NOW]] == [await first, await later]
    assert [[1], [2, 3]] == store.batches


async def test_a_row_whose_lease_was_lost_is_told_so() -> None:
    """A row the statement did not mark (lease taken over) gets None, the others their time."""
    store = Store(held={1})
    done = marks(store)
    assert [NOW, None] == list(await asyncio.gather(done.done(1), done.done(2)))


async def test_a_failed_statement_fails_every_waiting_answer() -> None:
    """The database error reaches each answer of the batch (the lease then runs out)."""
    store = Store()
    store.fail = RuntimeError("database down")
    done = marks(store)
    results = await asyncio.gather(done.done(1), done.done(2), return_exceptions=True)
    assert ["database down", "database down"] == [str(r) for r in results]
    store.fail = None
    assert NOW == await done.done(3)  # the next batch is written again


async def test_a_cancelled_answer_is_left_out_of_the_batch() -> None:
    """An answer cancelled before its batch was written is not marked."""
    store = Store()
    done = marks(store)
    gone, kept = done.submit(1), done.submit(2)  # both queued, the writer not yet run
    gone.cancel()
    assert NOW == await kept
    assert gone.cancelled()
    await done.close()
    assert [[2]] == store.batches


class LaneStore:
    """release_lanes only: records each batch of {shop: not_before}; ``taken`` were lost."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self.batches: list[dict[str, float | None]] = []
        self.taken = taken or set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = asyncio.Event()

    async def release_lanes(
        self, owner: str, lanes: Mapping[str, float | None], now: float
    ) -> set[str]:
        self.batches.append(dict(lanes))
        self.writing.set()
        await self.gate.wait()
        return set(lanes) - self.taken


async def test_lanes_ending_during_a_release_are_given_up_together_next() -> None:
    """The first lane is released at once; two ending meanwhile share the next statement, each
    with its own handover time, and a lane another relay took is told it was not ours."""
    store = LaneStore(taken={"shop-c"})
    store.gate.clear()
    releases = LaneReleases(cast(OutboxStore, store), "relay-1", lambda: NOW)
    first = asyncio.ensure_future(releases.release("shop-a", None))
    async with asyncio.timeout(5):
        await store.writing.wait()
    later = asyncio.gather(releases.release("shop-b", NOW + 0.4), releases.release("shop-c", None))
    store.gate.set()
    async with asyncio.timeout(5):
        assert [True, [True, False]] == [await first, await later]
    assert [{"shop-a": None}, {"shop-b": NOW + 0.4, "shop-c": None}] == store.batches
    assert 2 == releases.statements
