"""SQLite outbox store: the embedded default (one file, WAL, ``synchronous = FULL``).

Every write runs in ``BEGIN IMMEDIATE``, which takes SQLite's single write lock up front, so several
relay *processes* on one file stay correct: claims, lane leases and the token bucket are
read-modify-write under that lock. Within one process the store serialises its callers on an
``asyncio.Lock`` because they share one connection. ``BEGIN``, ``COMMIT`` and ``ROLLBACK`` run to
completion even when the caller is cancelled (the statement runs in aiosqlite's thread anyway), and
a cancelled transaction is rolled back, so a cancellation never leaves the write lock held.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from bridge.outbox.claims import claim_lanes_in, release_lanes_in
from bridge.outbox.engine import MAX_DEFER_SECONDS, SQLOutboxStore
from bridge.outbox.migrations import split_sql
from bridge.outbox.policy import Dialect, Statements
from bridge.outbox.rows import ClaimedLane, LaneClaim, OutboxError
from bridge.outbox.session import Params, Record, Session

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
# Stores whose transaction is open in the current task: calling the store itself from inside its
# own transaction would wait forever on the store's lock, so it raises instead.
_OPEN: ContextVar[frozenset[int]] = ContextVar("bridge_outbox_sqlite_open", default=frozenset())


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


SQLITE = Dialect(
    name="sqlite",
    greatest="MAX",
    least="MIN",
    skip_locked="",  # one writer at a time: BEGIN IMMEDIATE
    lock_row="",
    now_sql="(julianday('now') - 2440587.5) * 86400.0",
    schema_version_ddl=(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL, applied_at REAL NOT NULL)"
    ),
    split=split_sql,
    encode_json=_dumps,
    decode_json=orjson.loads,
    in_ids="id IN (SELECT value FROM json_each(:ids))",
    encode_ids=_dumps,
    shop_list="SELECT value AS shop FROM json_each(:shops)",
    shop_values=(
        "SELECT s.value AS shop, v.value AS value FROM json_each(:shops) AS s"
        " JOIN json_each(:values) AS v ON v.key = s.key"
    ),
    encode_list=_dumps,
    lateral=False,
)


def sqlite_path(dsn: str) -> str:
    """``sqlite:///rel/path`` -> ``rel/path``; ``sqlite:////abs/path`` -> ``/abs/path``."""
    prefix = "sqlite:///"
    if not dsn.startswith(prefix) or len(dsn) == len(prefix):
        raise OutboxError(
            "a SQLite outbox dsn looks like sqlite:///relative/path or sqlite:////abs/path"
        )
    return dsn[len(prefix) :]


async def _complete(operation: Awaitable[T]) -> T:
    """Await ``operation`` to its end even if cancelled meanwhile; then re-raise the cancel."""
    task = asyncio.ensure_future(operation)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


async def _set_up(conn: aiosqlite.Connection, busy_timeout: float) -> None:
    """Set the pragmas; ``journal_mode`` is retried while another process holds the file.

    Two processes opening a new file at once (one switching it to WAL), or one recovering the WAL
    after a crash (kill -9), make SQLite answer the other ``SQLITE_BUSY`` at once: waiting in the
    busy handler could deadlock, so it is skipped and ``busy_timeout`` alone does not cover it.
    """
    await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    deadline = asyncio.get_running_loop().time() + busy_timeout
    pause = 0.01
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or asyncio.get_running_loop().time() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)
    # FULL: a commit is on disk before it returns, so the offset committed after it
    # never outlives the row on power loss (NORMAL may lose the last commits in WAL).
    await conn.execute("PRAGMA synchronous = FULL")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class _ThreadSession:
    """A session on aiosqlite's own ``sqlite3`` connection, for a body run in its thread.

    Its coroutines never suspend (each statement runs at once), so :func:`_run_to_end` runs a
    coroutine written against :class:`Session` there, with no event loop: the store's set-based
    operations are written once and run in one trip to the thread.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Params) -> list[Record]:
        return list(self._conn.execute(sql, params).fetchall())

    async def execute(self, sql: str, params: Params) -> int:
        return self._conn.execute(sql, params).rowcount


def _run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (one on a :class:`_ThreadSession`)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    coroutine.close()
    raise RuntimeError("a coroutine on a thread session suspended")


class _Session:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Params) -> list[Record]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Params) -> int:
        cursor = await self._conn.execute(sql, params)
        count = cursor.rowcount
        await cursor.close()
        return count


class SQLiteOutboxStore(SQLOutboxStore):
    """OutboxStore on one SQLite file (see module docstring)."""

    sql = Statements(SQLITE)

    def __init__(self, conn: aiosqlite.Connection, path: str, busy_timeout: float) -> None:
        self._conn = conn
        self.busy_timeout = busy_timeout
        self._session = _Session(conn)
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, dsn: str, *, busy_timeout: float = BUSY_TIMEOUT_MS / 1000
    ) -> SQLiteOutboxStore:
        path = sqlite_path(dsn)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open SQLite outbox {path!r}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            await _set_up(conn, busy_timeout)
        except BaseException as exc:
            await conn.close()  # its worker thread is not a daemon: a leak would block exit
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"cannot open SQLite outbox {path!r}: {exc}") from exc
            raise
        return cls(conn, path, busy_timeout)

    async def close(self) -> None:
        await self._conn.close()

    def _check_reentry(self) -> None:
        if id(self) in _OPEN.get():
            raise OutboxError("outbox store used inside its own open transaction: use the OutboxTx")

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[_Session]:
        self._check_reentry()
        async with self._lock:
            yield self._session

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[_Session]:
        """One ``BEGIN IMMEDIATE`` transaction: commit on exit, roll back on any exception."""
        self._check_reentry()
        async with self._lock:
            token = _OPEN.set(_OPEN.get() | {id(self)})
            try:
                await self._begin()
                try:
                    yield self._session
                    await _complete(self._conn.execute("COMMIT"))
                except BaseException:
                    await _complete(self._rollback())
                    raise
            finally:
                _OPEN.reset(token)

    async def _begin(self) -> None:
        """Take the write lock; a cancellation waits for BEGIN to end, then rolls it back."""
        try:
            await _complete(self._conn.execute("BEGIN IMMEDIATE"))
        except asyncio.CancelledError:
            await _complete(self._rollback())
            raise
        except sqlite3.OperationalError as exc:
            raise OutboxError(
                f"the SQLite outbox {self.path!r} stayed locked by another writer for"
                f" busy_timeout ({self.busy_timeout:g} s): {exc}"
            ) from exc

    async def claim_lanes(
        self,
        owner: str,
        lease_seconds: float,
        now: float,
        wanted: Sequence[LaneClaim],
        *,
        release_empty: bool = False,
    ) -> dict[str, ClaimedLane]:
        """As :meth:`SQLOutboxStore.claim_lanes`, the whole transaction in one trip to the
        connection's thread: a relay starts hundreds of lanes at once, and each statement's trip
        waits for a turn of a busy event loop."""
        sql = self.sql
        found = await self._on_thread(
            lambda session: claim_lanes_in(
                session, sql, owner, lease_seconds, now, wanted, release_empty=release_empty
            )
        )
        return {shop: ClaimedLane(self._decoded(r), s) for shop, (r, s) in found.items()}

    async def release_lanes(
        self, owner: str, lanes: Mapping[str, float | None], now: float
    ) -> set[str]:
        """As :meth:`SQLOutboxStore.release_lanes`, in one trip to the connection's thread."""
        sql = self.sql
        return await self._on_thread(
            lambda session: release_lanes_in(session, sql, owner, lanes, now, MAX_DEFER_SECONDS)
        )

    async def _on_thread(self, work: Callable[[Session], Coroutine[Any, Any, T]]) -> T:
        """``work`` (written against :class:`Session`) as one transaction in one trip to the
        connection's thread, on a :class:`_ThreadSession`."""
        return await self._in_thread(lambda conn: _run_to_end(work(_ThreadSession(conn))))

    async def _in_thread(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back if it raises), run in
        one call on the connection's thread (aiosqlite's queue: ``Connection._execute``)."""
        conn = self._conn

        def transaction() -> T:
            raw: sqlite3.Connection = conn._conn  # in aiosqlite's thread, its own connection
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise OutboxError(
                    f"the SQLite outbox {self.path!r} stayed locked by another writer for"
                    f" busy_timeout ({self.busy_timeout:g} s): {exc}"
                ) from exc
            try:
                result = body(raw)
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return result

        self._check_reentry()
        async with self._lock:
            done: T = await _complete(conn._execute(transaction))  # type: ignore[no-untyped-call]  # aiosqlite's own queue, untyped
            return done

    async def pragmas(self) -> dict[str, Any]:
        """The connection's settings that durability depends on (synchronous 2 is FULL)."""
        names = ("journal_mode", "synchronous", "busy_timeout")
        async with self._read():
            return {
                n: next(iter(await self._conn.execute_fetchall(f"PRAGMA {n}")))[0] for n in names
            }

    async def _rollback(self) -> None:
        if self._conn.in_transaction:  # some errors end the transaction themselves
            await self._conn.execute("ROLLBACK")
