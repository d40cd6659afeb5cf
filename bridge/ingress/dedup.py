"""Bounded, time-windowed memory of accepted deliveries; concurrent twins wait for the first.

A window, not forever: platforms without a delivery id are deduplicated on the body's
hash, and a byte-identical *new* change (5→4, restock, 5→4 again) must not be mistaken for a
redelivery once the platform's retries are over.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class Abandoned(Exception):
    """The first attempt for this key was cancelled (shutdown); a twin must not pretend success."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    value: T
    duplicate: bool


class Deduplicator(Generic[T]):
    """Runs ``action`` once per key; a later call within ``window`` seconds is a duplicate.

    Only successes are remembered (a failed publish must be retried by the platform). At most
    ``capacity`` keys are kept, oldest evicted first; capacity 0 disables memory.
    """

    def __init__(
        self, capacity: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.window = window
        self.clock = clock
        self._accepted: OrderedDict[str, tuple[float, T]] = OrderedDict()  # key -> (expiry, value)
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._accepted)

    async def run(self, key: str, action: Callable[[], Awaitable[T]]) -> Outcome[T]:
        self._expire()
        remembered = self._accepted.get(key)
        if remembered is not None:
            return Outcome(remembered[1], duplicate=True)
        pending = self._inflight.get(key)
        if pending is not None:
            # A twin is being published right now: its success is ours; its failure is ours too.
            return Outcome(await asyncio.shield(pending), duplicate=True)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await action()
        except BaseException as exc:
            # Twins share the failure; a cancellation becomes Abandoned so that they answer
            # normally (the platform retries) instead of being cancelled themselves.
            shared = (
                Abandoned("first attempt cancelled")
                if isinstance(exc, asyncio.CancelledError)
                else exc
            )
            future.set_exception(shared)
            future.exception()  # mark retrieved: twins may not exist
            raise
        else:
            future.set_result(value)
            self._remember(key, value)
            return Outcome(value, duplicate=False)
        finally:
            del self._inflight[key]

    def _expire(self) -> None:
        now = self.clock()
        while self._accepted:
            key, (expiry, _value) = next(iter(self._accepted.items()))
            if expiry > now:
                break
            del self._accepted[key]

    def _remember(self, key: str, value: T) -> None:
        if self.capacity <= 0:
            return
        self._accepted[key] = (self.clock() + self.window, value)
        if len(self._accepted) > self.capacity:
            self._accepted.popitem(last=False)
