"""Which deliveries are redeliveries, and the id each change is published under.

A platform's own id does not tell changes apart: where it is the body hash (a platform without
delivery ids), stock 5→4, 4→5, 5→4 again repeats the first body; where it is (id, updated_at,
normalised fields), two customer or PII-only order edits within one second share it. So the
memory is per *entity*:

- the same delivery again (same platform id, byte-identical body) while it is still the entity's
  last change is a redelivery: the same published id, answered as a duplicate once published;
- anything else is a new change: the entity's change counter moves on and the published id is
  derived from (platform id, body digest, counter, previous body digest), so A-B-A yields three
  ids. The first change an ingress sees for an entity keeps the platform's id unchanged.

Only the *last* change of an entity can be a duplicate, so forgetting an entity (window,
capacity) can only make the ingress publish again, never drop a change. Ids are per process:
a redelivery that lands on another replica (or after a restart) is published again, with the
platform's id when it was that replica's first change for the entity. Consumers must tolerate
redeliveries (see README "Kafka contract").
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bridge.events import body_digest

T = TypeVar("T")


class Abandoned(Exception):
    """The first attempt for this key was cancelled (shutdown); a twin must not pretend success."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    id: str
    value: T
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Change:
    """One delivery as the deduplicator sees it."""

    entity: str  # e.g. "order\x1fshop:123": one entity of one shop
    platform_id: str  # the id the platform module derived
    body: bytes

    @property
    def digest(self) -> bytes:
        return bytes.fromhex(body_digest(self.body)[:32])


def change_id(platform_id: str, digest: bytes, changes: int, previous: bytes) -> str:
    """The published id of an entity's ``changes``-th change (0: the platform's id itself)."""
    if changes == 0:
        return platform_id
    text = f"{platform_id}\x1f{digest.hex()}\x1f{changes}\x1f{previous.hex()}"
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# What is remembered of an entity, as a tuple of atoms (platform id, body digest, change count,
# published id, expiry, ``(value,)`` once the broker acknowledged or None): the garbage collector
# stops tracking such tuples, so a memory of 100k entities does not lengthen every collection.
_Entry = tuple[str, bytes, int, str, float, "tuple[T] | None"]


class Deduplicator(Generic[T]):
    """Runs ``action`` once per change; the same delivery again within ``window`` is a duplicate.

    Only successes count as published (a failed publish must be retried by the platform). At
    most ``capacity`` entities are remembered, the least recently changed evicted first;
    capacity 0 disables memory (every delivery publishes, twins still wait for each other).
    """

    def __init__(
        self, capacity: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.window = window
        self.clock = clock
        self._entities: OrderedDict[str, _Entry[T]] = OrderedDict()
        # id -> the future twins wait on (made when the first twin comes), or None
        self._inflight: dict[str, asyncio.Future[T] | None] = {}

    def __len__(self) -> int:
        return len(self._entities)

    def identify(self, change: Change) -> tuple[str, tuple[T] | None]:
        """The published id of ``change`` and, for a redelivery already published, its value."""
        self._expire()
        digest = change.digest
        entry = self._entities.get(change.entity)
        if entry is not None and entry[0] == change.platform_id and entry[1] == digest:
            self._touch(change.entity, entry)
            return entry[3], entry[5]
        changes = 0 if entry is None else entry[2] + 1
        previous = b"" if entry is None else entry[1]
        id_ = change_id(change.platform_id, digest, changes, previous)
        if self.capacity > 0:
            self._touch(change.entity, (change.platform_id, digest, changes, id_, 0.0, None))
        return id_, None

    def pending(self, id_: str) -> asyncio.Future[T] | None:
        """A future of the publish of ``id_`` under way right now (a twin waits for it), or None
        when none is under way. The future is made only when a twin asks for it."""
        if id_ not in self._inflight:
            return None
        future = self._inflight[id_]
        if future is None:
            future = self._inflight[id_] = asyncio.get_running_loop().create_future()
        return future

    def begin(self, id_: str) -> None:
        """The publish of ``id_`` starts: twins arriving now wait for it (:meth:`pending`)."""
        self._inflight[id_] = None

    def succeeded(self, change: Change, id_: str, value: T) -> None:
        """The publish of ``id_`` was acknowledged with ``value``: the same delivery again is a
        duplicate answered with it."""
        future = self._inflight.pop(id_, None)
        if future is not None:
            future.set_result(value)
        entry = self._entities.get(change.entity)
        if entry is not None and entry[3] == id_:
            self._entities[change.entity] = (*entry[:5], (value,))

    def failed(self, id_: str, exc: BaseException) -> None:
        """The publish of ``id_`` failed: its twins share the failure; a cancellation becomes
        Abandoned so that they answer normally (the platform retries) instead of being
        cancelled themselves."""
        future = self._inflight.pop(id_, None)
        if future is None:
            return
        shared = (
            Abandoned("first attempt cancelled") if isinstance(exc, asyncio.CancelledError) else exc
        )
        future.set_exception(shared)
        future.exception()  # mark retrieved: twins may have gone

    async def run(self, change: Change, action: Callable[[str], Awaitable[T]]) -> Outcome[T]:
        """Publish ``change`` with ``action(published_id)`` unless it is a redelivery."""
        id_, published = self.identify(change)
        if published is not None:
            return Outcome(id_, published[0], duplicate=True)
        return await self.publish(change, id_, action)

    async def publish(
        self, change: Change, id_: str, action: Callable[[str], Awaitable[T]]
    ) -> Outcome[T]:
        """``action(id_)`` for a ``change`` :meth:`identify` found new, unless its twin is being
        published right now: then the twin's outcome (its failure too) is this one's."""
        pending = self.pending(id_)
        if pending is not None:
            # A twin is being published right now: its success is ours; its failure is ours too.
            return Outcome(id_, await asyncio.shield(pending), duplicate=True)
        self.begin(id_)
        try:
            value = await action(id_)
        except BaseException as exc:
            self.failed(id_, exc)
            raise
        self.succeeded(change, id_, value)
        return Outcome(id_, value, duplicate=False)

    def _touch(self, key: str, entry: _Entry[T]) -> None:
        platform_id, digest, changes, id_, _expiry, published = entry
        expiry = self.clock() + self.window
        self._entities[key] = (platform_id, digest, changes, id_, expiry, published)
        self._entities.move_to_end(key)
        while len(self._entities) > self.capacity:
            self._entities.popitem(last=False)

    def _expire(self) -> None:
        now = self.clock()
        while self._entities:
            entry = next(iter(self._entities.values()))
            if entry[4] > now:
                break
            self._entities.popitem(last=False)
