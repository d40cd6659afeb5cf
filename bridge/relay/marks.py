"""Group commit of the relay's ``done`` marks: one statement for every answer that came meanwhile.

A delivery's outcome is in the database before it is reported (docs/relay.md), so each delivery
waits for its mark. Rather than one transaction per answer, :class:`DoneMarks` writes the marks
of every answer that arrived while the previous write ran in one ``mark_done_many`` statement:
no timer, no added delay when the relay is idle (the first answer is written at once), and under
load one statement (one commit, one fsync on SQLite) per batch of answers instead of per answer.
Each row is still checked against its own lease in that statement: a row whose lease was taken
over is reported back as lost, as ``mark_done`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from bridge.outbox.store import OutboxStore


class DoneMarks:
    """``await marks.done(row_id)``: the time the row was marked done, or None (lease lost)."""

    def __init__(self, store: OutboxStore, owner: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.owner = owner
        self.clock = clock
        self.statements = 0  # mark_done_many calls made (for tests and the benchmark)
        self._pending: list[tuple[int, asyncio.Future[float | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Answers waiting for the next statement."""
        return len(self._pending)

    async def done(self, row_id: int) -> float | None:
        """Mark ``row_id`` done with the next batch; raises what the statement raised."""
        return await self.submit(row_id)

    def submit(self, row_id: int) -> asyncio.Future[float | None]:
        """Queue ``row_id`` for the next statement (starting it if none runs); its answer."""
        answer: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._pending.append((row_id, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="relay-done-marks")
        return answer

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            waiting = [(i, f) for i, f in batch if not f.done()]  # a cancelled sender: skip
            if not waiting:
                continue
            now = self.clock()
            self.statements += 1
            try:
                marked = await self.store.mark_done_many([i for i, _ in waiting], self.owner, now)
            except Exception as exc:
                for _, answer in waiting:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for row_id, answer in waiting:
                if not answer.done():
                    answer.set_result(now if row_id in marked else None)

    async def close(self) -> None:
        """Let the last batch finish (its senders are gone if they were cancelled)."""
        if self._writer is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._writer
            self._writer = None
