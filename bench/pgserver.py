"""A throw-away PostgreSQL server for the benchmarks, started exactly as the tests start theirs
(``tests/postgres_harness.py``: ``initdb`` + ``pg_ctl`` from the machine's binaries, a free
127.0.0.1 port, ``fsync=off``), and a fresh schema per measured database.

``BRIDGE_TEST_POSTGRES_DSN`` names an existing server instead, as for the tests.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import asyncpg
from samples import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.postgres_harness import ENV_DSN, postgres_cluster


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The dsn of a running server (external, or a cluster made here and removed after)."""
    external = os.environ.get(ENV_DSN)
    if external:
        yield external
        return
    with postgres_cluster() as dsn:
        yield dsn


async def fresh_schema(dsn: str, schema: str) -> str:
    """A dsn whose ``search_path`` is ``schema``, created empty (dropped first if it exists)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}search_path={schema}"
