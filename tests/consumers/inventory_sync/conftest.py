"""Outbox fixtures for the inventory-sync app tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.outbox.store import OutboxStore, open_store


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
async def store(outbox_dsn: str) -> AsyncIterator[OutboxStore]:
    """A migrated outbox store on a fresh database."""
    opened = await open_store(outbox_dsn)
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()
