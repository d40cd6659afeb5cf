"""The ingress deduplicator: redeliveries vs new changes per entity, bounded, failures not kept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bridge.ingress.dedup import Abandoned, Change, Deduplicator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def change(body: bytes, entity: str = "variant\x1fshop:1", platform_id: str = "p") -> Change:
    return Change(entity=entity, platform_id=platform_id, body=body)


def _value(value: str) -> Callable[[str], Awaitable[str]]:
    async def action(_id: str) -> str:
        return value

    return action


async def test_second_call_within_window_is_duplicate_and_not_run() -> None:
    """Within the window the action runs once; the twin gets the first value and id."""
    clock, calls = Clock(), []
    dedup: Deduplicator[int] = Deduplicator(10, window=60, clock=clock)

    async def action(_id: str) -> int:
        calls.append(1)
        return len(calls)

    first = await dedup.run(change(b"A"), action)
    clock.now += 59
    second = await dedup.run(change(b"A"), action)
    assert (1, False, 1, True) == (first.value, first.duplicate, second.value, second.duplicate)
    assert first.id == second.id
    assert 1 == len(calls)


async def test_a_b_a_is_three_changes_with_three_ids() -> None:
    """A body identical to an earlier one, after a different one, is a new change (5→4→5→4)."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    outcomes = [await dedup.run(change(body), _value("v")) for body in (b"A", b"B", b"A")]
    again = await dedup.run(change(b"A"), _value("v"))
    assert [False, False, False] == [o.duplicate for o in outcomes]
    assert 3 == len({o.id for o in outcomes})
    assert (True, outcomes[2].id) == (again.duplicate, again.id)


async def test_first_change_keeps_the_platform_id_and_a_b_a_b_stays_distinct() -> None:
    """The first change seen is published under the platform id; a long A-B-A-B never repeats."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    ids = [(await dedup.run(change(b), _value("v"))).id for b in (b"A", b"B", b"A", b"B", b"A")]
    assert "p" == ids[0]
    assert 5 == len(set(ids))


async def test_same_platform_id_different_body_is_a_new_change() -> None:
    """Two Cyberbiz edits in one second share the platform id but not the body: both publish."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    first = await dedup.run(change(b'{"name":"a"}'), _value("1"))
    second = await dedup.run(change(b'{"name":"b"}'), _value("2"))
    assert (False, False) == (first.duplicate, second.duplicate)
    assert first.id != second.id


async def test_entities_are_independent() -> None:
    """The same body for two entities is two changes; each entity keeps its own memory."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    one = await dedup.run(change(b"A", entity="e1", platform_id="p1"), _value("1"))
    two = await dedup.run(change(b"A", entity="e2", platform_id="p2"), _value("2"))
    assert (False, False, 2) == (one.duplicate, two.duplicate, len(dedup))


async def test_after_the_window_the_same_delivery_counts_again() -> None:
    """An identical delivery after the window is published again (memory is bounded in time)."""
    clock = Clock()
    dedup: Deduplicator[str] = Deduplicator(10, window=60, clock=clock)
    await dedup.run(change(b"A"), _value("a"))
    clock.now += 61
    outcome = await dedup.run(change(b"A"), _value("b"))
    assert ("b", False) == (outcome.value, outcome.duplicate)


async def test_capacity_evicts_the_least_recently_changed_entity() -> None:
    """Memory is bounded: past capacity the oldest entity is forgotten (and then republished)."""
    dedup: Deduplicator[str] = Deduplicator(2, window=600, clock=Clock())
    for key in ("a", "b", "c"):
        await dedup.run(change(b"x", entity=key), _value(key))
    assert 2 == len(dedup)
    assert False is (await dedup.run(change(b"x", entity="a"), _value("a2"))).duplicate
    assert True is (await dedup.run(change(b"x", entity="c"), _value("c2"))).duplicate


async def test_capacity_zero_remembers_nothing() -> None:
    """With capacity 0 every delivery publishes."""
    dedup: Deduplicator[str] = Deduplicator(0, window=600, clock=Clock())
    await dedup.run(change(b"A"), _value("a"))
    assert (False, 0) == ((await dedup.run(change(b"A"), _value("b"))).duplicate, len(dedup))


async def test_failures_are_not_remembered_and_twins_share_them() -> None:
    """A failed action is not remembered; a concurrent twin sees the same failure."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    gate = asyncio.Event()

    async def failing(_id: str) -> str:
        await gate.wait()
        raise RuntimeError("kafka down")

    first = asyncio.create_task(dedup.run(change(b"A"), failing))
    await asyncio.sleep(0)
    twin = asyncio.create_task(dedup.run(change(b"A"), failing))
    await asyncio.sleep(0)
    gate.set()
    for task in (first, twin):
        with pytest.raises(RuntimeError):
            await task
    retried = await dedup.run(change(b"A"), _value("ok"))
    assert (False, "p") == (retried.duplicate, retried.id)


async def test_a_cancelled_first_attempt_abandons_its_twins() -> None:
    """If the first attempt is cancelled (shutdown), a waiting twin gets Abandoned, not a
    cancellation of its own, so the ingress can answer it 503."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    gate = asyncio.Event()

    async def slow(_id: str) -> str:
        await gate.wait()
        return "never"

    first = asyncio.create_task(dedup.run(change(b"A"), slow))
    await asyncio.sleep(0)
    twin = asyncio.create_task(dedup.run(change(b"A"), slow))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(Abandoned):
        await twin
    assert first.cancelled()
