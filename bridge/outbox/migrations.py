"""Versioned schema migrations: ``migrations/{dialect}/NNNN_name.sql``, loaded and split. Pure.

Both dialects carry the same version numbers; an applied file is never edited, the next number is
added instead. The runner (one for both dialects) is ``SQLOutboxStore.migrate``.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from bridge.outbox.rows import OutboxError

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The versioned ``NNNN_name.sql`` files of ``dialect`` (sqlite | postgres), in order."""
    folder = resources.files("bridge.outbox").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if not found or versions != list(range(1, len(found) + 1)):
        raise OutboxError(f"{dialect} migrations must be numbered 0001, 0002, … got {versions}")
    return found


def split_sql(script: str) -> list[str]:
    """Split a SQLite script into complete statements (``executescript`` would commit)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            text = buffer.strip()
            if text.strip(";").strip():
                statements.append(text)
            buffer = ""
    if buffer.strip(";").strip():
        raise OutboxError(f"incomplete SQL statement at the end of a migration: {buffer[:60]!r}")
    return statements


def whole_script(script: str) -> list[str]:
    """PostgreSQL runs a whole migration script as one simple-protocol query."""
    return [script]
