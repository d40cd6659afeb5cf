"""The retention purge: finished rows older than ``outbox.retention`` leave the outbox.

The relay process runs :func:`purge_loop` next to its lanes. Each pass deletes the rows due in
batches of ``batch`` (the oldest first, one short write transaction each, so claims and consumer
transactions interleave with a large purge), then waits ``interval``. Live rows are never
touched; a failed pass is logged and the next one tries again. With several relays, each purges:
the statements are idempotent, a row is deleted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from bridge.log import get_logger
from bridge.outbox.contract import OperatorStore

log = get_logger(__name__)

PURGE_BATCH = 5_000
MAX_INTERVAL = 3600.0  # at least one pass an hour, and one at start


def purge_interval(retention: float) -> float:
    """Seconds between passes: a tenth of the retention, at most an hour."""
    return min(MAX_INTERVAL, retention / 10)


async def purge_expired(
    store: OperatorStore, retention: float, now: float, batch: int = PURGE_BATCH
) -> int:
    """Delete every finished row last updated more than ``retention`` seconds before ``now``."""
    older_than = timedelta(seconds=retention)
    total = 0
    while True:
        deleted = await store.purge(older_than, now, limit=batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # let the lanes' statements in between batches


async def purge_loop(
    store: OperatorStore,
    retention: float,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
    interval: float | None = None,
) -> None:
    """Purge now and then every ``interval`` (default :func:`purge_interval`) until ``stop``."""
    wait = purge_interval(retention) if interval is None else interval
    while not stop.is_set():
        try:
            purged = await purge_expired(store, retention, clock())
        except Exception:
            log.exception("outbox_purge_failed", retention=retention)
        else:
            if purged:
                log.info("outbox_purged", rows=purged, retention=retention)
        try:
            async with asyncio.timeout(wait):
                await stop.wait()
        except TimeoutError:
            continue


@contextlib.asynccontextmanager
async def purging(
    store: OperatorStore, retention: float, stop: asyncio.Event
) -> AsyncIterator[None]:
    """:func:`purge_loop` in the background while the block runs (nothing when retention is 0)."""
    if retention <= 0:
        yield
        return
    task = asyncio.create_task(purge_loop(store, retention, stop), name="outbox-purge")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
