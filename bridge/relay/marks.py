"""Group commit of the relay's small writes: one statement for every request that came meanwhile.

A delivery's outcome is in the database before it is reported (docs/relay.md), so each delivery
waits for its mark; a lane that ends waits for its release. Rather than one transaction each,
:class:`GroupCommit` writes every item that arrived while the previous write ran in one
statement: no timer, no added delay when the relay is idle (the first item is written at once),
and under load one commit (one fsync on SQLite, one round trip on PostgreSQL) per batch instead
of per item. Its users:

* :class:`DoneMarks` — ``mark_done_many``; each row is still checked against its own lease in
  that statement: a row whose lease was taken over is reported back as lost, as ``mark_done``
  would;
* :class:`LaneReleases` — ``release_lanes`` with each lane's handover time (``not_before``); a
  lane another relay took meanwhile is reported as not released, as ``release_lane`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

from bridge.outbox.store import OutboxStore

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


class GroupCommit(Generic[K, V, R]):
    """``await group.submit(key, value)``: the result of the statement that wrote it.

    ``write`` gets every pending ``{key: value}`` at once and returns the results by key; a key
    left out gets ``missing``. Submitting a key again before its write replaces its value.
    """

    def __init__(
        self, write: Callable[[Mapping[K, V]], Awaitable[Mapping[K, R]]], missing: R, name: str
    ) -> None:
        self._write_batch = write
        self._missing = missing
        self._name = name
        self.statements = 0  # writes made (for tests and the benchmark)
        self._pending: dict[K, tuple[V, list[asyncio.Future[R]]]] = {}
        self._writer: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Items waiting for the next statement."""
        return len(self._pending)

    def submit(self, key: K, value: V) -> asyncio.Future[R]:
        """Queue ``key`` for the next statement (starting it if none runs); its answer."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        waiting = self._pending.get(key)
        self._pending[key] = (value, [*(waiting[1] if waiting else []), answer])
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=self._name)
        return answer

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            live = {k: (v, [f for f in fs if not f.done()]) for k, (v, fs) in batch.items()}
            live = {k: entry for k, entry in live.items() if entry[1]}  # cancelled: skip
            if not live:
                continue
            self.statements += 1
            try:
                results = await self._write_batch({k: v for k, (v, _) in live.items()})
            except Exception as exc:
                for _, answers in live.values():
                    for answer in answers:
                        if not answer.done():
                            answer.set_exception(exc)
                continue
            for key, (_, answers) in live.items():
                for answer in answers:
                    if not answer.done():
                        answer.set_result(results.get(key, self._missing))

    async def close(self) -> None:
        """Let the last batch finish (its submitters are gone if they were cancelled)."""
        if self._writer is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._writer
            self._writer = None


class DoneMarks:
    """``await marks.done(row_id)``: the time the row was marked done, or None (lease lost)."""

    def __init__(self, store: OutboxStore, owner: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self._group: GroupCommit[int, None, float | None] = GroupCommit(
            self._mark, None, "relay-done-marks"
        )

    @property
    def statements(self) -> int:
        """``mark_done_many`` calls made."""
        return self._group.statements

    @property
    def queued(self) -> int:
        return self._group.queued

    async def done(self, row_id: int) -> float | None:
        """Mark ``row_id`` done with the next batch; raises what the statement raised."""
        return await self._group.submit(row_id, None)

    def submit(self, row_id: int) -> asyncio.Future[float | None]:
        return self._group.submit(row_id, None)

    async def _mark(self, rows: Mapping[int, None]) -> dict[int, float | None]:
        now = self.clock()
        marked = await self.store.mark_done_many(list(rows), self.owner, now)
        return {row_id: now for row_id in rows if row_id in marked}

    async def close(self) -> None:
        await self._group.close()


class LaneReleases:
    """``await releases.release(shop, not_before)``: whether the lane was still ours to give up."""

    def __init__(self, store: OutboxStore, owner: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self._group: GroupCommit[str, float | None, bool] = GroupCommit(
            self._release, False, "relay-lane-releases"
        )

    @property
    def statements(self) -> int:
        return self._group.statements

    async def release(self, shop: str, not_before: float | None) -> bool:
        """Give ``shop``'s lane up with the next batch; the next holder sends from
        ``not_before`` on (None: at once)."""
        return await self._group.submit(shop, not_before)

    async def _release(self, lanes: Mapping[str, float | None]) -> dict[str, bool]:
        released = await self.store.release_lanes(self.owner, lanes, self.clock())
        return {shop: shop in released for shop in lanes}

    async def close(self) -> None:
        await self._group.close()
