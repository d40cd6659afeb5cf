"""The ingress deduplicator: once per key within a window, bounded, failures not remembered."""

from __future__ import annotations

import asyncio

import pytest

from bridge.ingress.dedup import Abandoned, Deduplicator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_second_call_within_window_is_duplicate_and_not_run() -> None:
    """Within the window the action runs once; the twin gets the first value as a duplicate."""
    clock, calls = Clock(), []
    dedup: Deduplicator[int] = Deduplicator(10, window=60, clock=clock)

    async def action() -> int:
        calls.append(1)
        return len(calls)

    first = await dedup.run("k", action)
    clock.now += 59
    second = await dedup.run("k", action)
    assert (1, False, 1, True) == (first.value, first.duplicate, second.value, second.duplicate)
    assert 1 == len(calls)


async def test_after_the_window_the_same_key_counts_again() -> None:
    """An identical delivery after the window is a new event (BentoWeb has no delivery id)."""
    clock = Clock()
    dedup: Deduplicator[str] = Deduplicator(10, window=60, clock=clock)
    await dedup.run("k", _value("a"))
    clock.now += 61
    outcome = await dedup.run("k", _value("b"))
    assert ("b", False) == (outcome.value, outcome.duplicate)


async def test_capacity_evicts_the_oldest() -> None:
    """Memory is bounded: past capacity the oldest key is forgotten."""
    dedup: Deduplicator[str] = Deduplicator(2, window=600, clock=Clock())
    for key in ("a", "b", "c"):
        await dedup.run(key, _value(key))
    assert 2 == len(dedup)
    assert False is (await dedup.run("a", _value("a2"))).duplicate
    assert True is (await dedup.run("c", _value("c2"))).duplicate


async def test_failures_are_not_remembered_and_twins_share_them() -> None:
    """A failed action is not remembered; a concurrent twin sees the same failure."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    gate = asyncio.Event()

    async def failing() -> str:
        await gate.wait()
        raise RuntimeError("kafka down")

    first = asyncio.create_task(dedup.run("k", failing))
    await asyncio.sleep(0)
    twin = asyncio.create_task(dedup.run("k", failing))
    await asyncio.sleep(0)
    gate.set()
    for task in (first, twin):
        with pytest.raises(RuntimeError):
            await task
    assert False is (await dedup.run("k", _value("ok"))).duplicate


def _value(value: str):  # type: ignore[no-untyped-def]
    async def action() -> str:
        return value

    return action


async def test_a_cancelled_first_attempt_abandons_its_twins() -> None:
    """If the first attempt is cancelled (shutdown), a waiting twin gets Abandoned, not a
    cancellation of its own, so the ingress can answer it 503."""
    dedup: Deduplicator[str] = Deduplicator(10, window=600, clock=Clock())
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "never"

    first = asyncio.create_task(dedup.run("k", slow))
    await asyncio.sleep(0)
    twin = asyncio.create_task(dedup.run("k", slow))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(Abandoned):
        await twin
    assert first.cancelled()
