"""Durability settings, cancellation and timeouts of the two stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.outbox import OutboxError
from bridge.outbox.postgres import PostgresOutboxStore
from bridge.outbox.sqlite import SQLiteOutboxStore
from tests.outbox.helpers import T0, write

DEADLINE = 5.0


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every 5 ms until it holds; fail after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {DEADLINE} s")
        await asyncio.sleep(0.005)


@pytest.fixture
async def sqlite_dsn(tmp_path: Path) -> str:
    """A migrated SQLite outbox file."""
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    store = await SQLiteOutboxStore.open(dsn)
    await store.migrate()
    await store.close()
    return dsn


async def hold_write_lock(store: SQLiteOutboxStore, held: asyncio.Event, go: asyncio.Event) -> None:
    """Keep a write transaction open on ``store`` until ``go`` is set."""
    async with store.transaction() as tx:
        await tx.put_state("test", "holder", 1)
        held.set()
        await go.wait()


async def test_sqlite_commits_are_synchronous_full(sqlite_dsn: str) -> None:
    """WAL with synchronous = FULL (2): a returned commit survives power loss."""
    store = await SQLiteOutboxStore.open(sqlite_dsn)
    try:
        assert {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 10_000} == (
            await store.pragmas()
        )
    finally:
        await store.close()


async def test_cancel_while_waiting_for_the_write_lock_leaves_no_lock(sqlite_dsn: str) -> None:
    """A task cancelled inside BEGIN IMMEDIATE never keeps the lock or an open transaction."""
    store, holder = (
        await SQLiteOutboxStore.open(sqlite_dsn),
        await SQLiteOutboxStore.open(sqlite_dsn),
    )
    try:
        held, go = asyncio.Event(), asyncio.Event()
        holding = asyncio.create_task(hold_write_lock(holder, held, go))
        await asyncio.wait_for(held.wait(), DEADLINE)

        async def add_one() -> None:
            async with store.transaction() as tx:
                await tx.add(write("variant:1", "never"), T0)

        waiting = asyncio.create_task(add_one())
        await eventually(store._lock.locked)  # its BEGIN IMMEDIATE is now waiting for `holder`
        waiting.cancel()
        go.set()
        async with asyncio.timeout(DEADLINE):
            await holding
            with pytest.raises(asyncio.CancelledError):
                await waiting
            async with store.transaction() as tx:
                await tx.add(write("variant:2", "after"), T0)
            async with holder.transaction() as tx:
                await tx.put_state("test", "holder", 2)
        assert ["after"] == [r.idempotency_key for r in await holder.list_rows()]
    finally:
        await store.close()
        await holder.close()


async def test_cancel_inside_a_transaction_rolls_it_back(sqlite_dsn: str) -> None:
    """A task cancelled mid-transaction leaves nothing written and the lock free."""
    store, other = (
        await SQLiteOutboxStore.open(sqlite_dsn),
        await SQLiteOutboxStore.open(sqlite_dsn),
    )
    try:
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
    finally:
        await store.close()
        await other.close()


async def test_sqlite_lock_held_past_busy_timeout_is_an_outbox_error(sqlite_dsn: str) -> None:
    """Waiting longer than busy_timeout for another writer ends in an OutboxError naming it."""
    store = await SQLiteOutboxStore.open(sqlite_dsn, busy_timeout=0.05)
    holder = await SQLiteOutboxStore.open(sqlite_dsn)
    try:
        held, go = asyncio.Event(), asyncio.Event()
        holding = asyncio.create_task(hold_write_lock(holder, held, go))
        await asyncio.wait_for(held.wait(), DEADLINE)
        with pytest.raises(OutboxError, match="busy_timeout"):
            await store.reserve("shop-a", 1.0, 1, 1, T0)
        go.set()
        await asyncio.wait_for(holding, DEADLINE)
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
        held, go = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with store.transaction():
                held.set()
                await go.wait()

        holding = asyncio.create_task(hold())
        await asyncio.wait_for(held.wait(), DEADLINE)
        async with asyncio.timeout(DEADLINE):
            with pytest.raises(OutboxError, match=r"acquire_timeout \(0.2 s\)"):
                await store.counts()
        go.set()
        await asyncio.wait_for(holding, DEADLINE)
        assert {} == await store.counts()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_statement_past_command_timeout(postgres_schema_dsn: str) -> None:
    """A statement blocked longer than command_timeout fails with an OutboxError naming it."""
    store = await PostgresOutboxStore.open(postgres_schema_dsn, max_size=2, command_timeout=0.3)
    try:
        await store.migrate()
        held, go = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with store.transaction() as tx:
                await tx.get_state("pools", "g")  # locks the key until the transaction ends
                held.set()
                await go.wait()

        holding = asyncio.create_task(hold())
        await asyncio.wait_for(held.wait(), DEADLINE)
        async with asyncio.timeout(DEADLINE):
            with pytest.raises(OutboxError, match=r"command_timeout \(0.3 s\)"):
                async with store.transaction() as tx:
                    await tx.get_state("pools", "g")
        go.set()
        await asyncio.wait_for(holding, DEADLINE)
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
