"""Durability settings, cancellation and timeouts of the two stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bridge.outbox import OutboxError, OutboxStore
from bridge.outbox.postgres import PostgresOutboxStore
from bridge.outbox.sqlite import SQLiteOutboxStore
from tests.outbox.helpers import T0, write

DEADLINE = 5.0
Hold = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {DEADLINE} s")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def held_open(hold: Hold) -> AsyncIterator[asyncio.Event]:
    """Run ``hold(held, go)`` until it sets ``held``; yield ``go``; on exit set it and join."""
    held, go = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(hold(held, go))
    try:
        await asyncio.wait_for(held.wait(), DEADLINE)
        yield go
    finally:
        go.set()
        await asyncio.wait_for(task, DEADLINE)


def open_transaction(store: OutboxStore) -> Hold:
    """A holder that keeps a write transaction open on ``store`` until told to go."""

    async def hold(held: asyncio.Event, go: asyncio.Event) -> None:
        async with store.transaction() as tx:
            await tx.put_state("test", "holder", 1)
            held.set()
            await go.wait()

    return hold


@pytest.fixture
async def sqlite_dsn(tmp_path: Path) -> str:
    """A migrated SQLite outbox file."""
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    store = await SQLiteOutboxStore.open(dsn)
    await store.migrate()
    await store.close()
    return dsn


@pytest.fixture
async def sqlite_pair(
    sqlite_dsn: str,
) -> AsyncIterator[tuple[SQLiteOutboxStore, SQLiteOutboxStore]]:
    """Two stores on one SQLite file, as two processes would have."""
    first = await SQLiteOutboxStore.open(sqlite_dsn)
    second = await SQLiteOutboxStore.open(sqlite_dsn)
    yield first, second
    await first.close()
    await second.close()


async def test_sqlite_commits_are_synchronous_full(sqlite_dsn: str) -> None:
    """WAL with synchronous = FULL (2): a returned commit survives power loss."""
    store = await SQLiteOutboxStore.open(sqlite_dsn)
    try:
        expected = {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 10_000}
        assert expected == await store.pragmas()
    finally:
        await store.close()


async def test_cancel_while_waiting_for_the_write_lock_leaves_no_lock(
    sqlite_pair: tuple[SQLiteOutboxStore, SQLiteOutboxStore],
) -> None:
    """A task cancelled inside BEGIN IMMEDIATE never keeps the lock or an open transaction."""
    store, holder = sqlite_pair

    async def add_one() -> None:
        async with store.transaction() as tx:
            await tx.add(write("variant:1", "never"), T0)

    async with held_open(open_transaction(holder)) as go:
        waiting = asyncio.create_task(add_one())
        await eventually(store._lock.locked)  # its BEGIN IMMEDIATE now waits for `holder`
        waiting.cancel()
        go.set()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(asyncio.CancelledError):
            await waiting
        async with store.transaction() as tx:
            await tx.add(write("variant:2", "after"), T0)
        async with holder.transaction() as tx:
            await tx.put_state("test", "holder", 2)
    assert ["after"] == [r.idempotency_key for r in await holder.list_rows()]


async def test_cancel_inside_a_transaction_rolls_it_back(
    sqlite_pair: tuple[SQLiteOutboxStore, SQLiteOutboxStore],
) -> None:
    """A task cancelled mid-transaction leaves nothing written and the lock free."""
    store, other = sqlite_pair
    entered = asyncio.Event()

    async def stuck() -> None:
        async with store.transaction() as tx:
            await tx.add(write("variant:1", "never"), T0)
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await asyncio.wait_for(entered.wait(), DEADLINE)
    task.cancel()
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(asyncio.CancelledError):
            await task
        async with other.transaction() as tx:
            await tx.add(write("variant:2", "after"), T0)
    assert ["after"] == [r.idempotency_key for r in await store.list_rows()]


async def test_sqlite_lock_held_past_busy_timeout_is_an_outbox_error(sqlite_dsn: str) -> None:
    """Waiting longer than busy_timeout for another writer ends in an OutboxError naming it."""
    store = await SQLiteOutboxStore.open(sqlite_dsn, busy_timeout=0.05)
    holder = await SQLiteOutboxStore.open(sqlite_dsn)
    try:
        async with held_open(open_transaction(holder)):
            with pytest.raises(OutboxError, match="busy_timeout"):
                await store.reserve("shop-a", 1.0, 1, 1, T0)
        assert [T0] == await store.reserve("shop-a", 1.0, 1, 1, T0)
    finally:
        await store.close()
        await holder.close()


@pytest.mark.postgres
async def test_postgres_pool_exhausted_past_acquire_timeout(postgres_schema_dsn: str) -> None:
    """With every pooled connection busy, a call fails after acquire_timeout with an OutboxError."""
    store = await PostgresOutboxStore.open(postgres_schema_dsn, max_size=1, acquire_timeout=0.2)
    try:
        await store.migrate()
        async with held_open(open_transaction(store)), asyncio.timeout(DEADLINE):
            with pytest.raises(OutboxError, match=r"acquire_timeout \(0.2 s\)"):
                await store.counts()
        assert {} == await store.counts()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_statement_past_command_timeout(postgres_schema_dsn: str) -> None:
    """A statement blocked longer than command_timeout fails with an OutboxError naming it."""
    store = await PostgresOutboxStore.open(postgres_schema_dsn, max_size=2, command_timeout=0.3)

    async def lock_state(held: asyncio.Event, go: asyncio.Event) -> None:
        async with store.transaction() as tx:
            await tx.get_state("pools", "g")  # locks the key until the transaction ends
            held.set()
            await go.wait()

    async def read_locked_state() -> None:
        async with store.transaction() as tx:
            await tx.get_state("pools", "g")

    try:
        await store.migrate()
        async with held_open(lock_state), asyncio.timeout(DEADLINE):
            with pytest.raises(OutboxError, match=r"command_timeout \(0.3 s\)"):
                await read_locked_state()
        assert {} == await store.counts()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_limits_default_to_30_and_10_seconds(postgres_schema_dsn: str) -> None:
    """Without options, statements are bounded at 30 s and taking a connection at 10 s."""
    store = await PostgresOutboxStore.open(postgres_schema_dsn)
    try:
        assert (30.0, 10.0) == (store.command_timeout, store.acquire_timeout)
    finally:
        await store.close()
