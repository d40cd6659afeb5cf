"""Store fixtures: every contract test runs once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bridge.outbox import OutboxStore, open_store

OpenStore = Callable[[], Awaitable[OutboxStore]]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def outbox_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A dsn of an empty outbox database of the parametrised kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    dsn: str = request.getfixturevalue("postgres_schema_dsn")
    return dsn


@pytest.fixture
async def open_other(outbox_dsn: str) -> AsyncIterator[OpenStore]:
    """Open more store objects on the same database, as other processes would."""
    opened: list[OutboxStore] = []

    async def factory() -> OutboxStore:
        store = await open_store(outbox_dsn)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_other: OpenStore) -> OutboxStore:
    """A migrated store on a fresh database."""
    opened = await open_other()
    await opened.migrate()
    return opened
