"""The outbox's values: what a consumer adds (``NewWrite``), what it gets back, what a row holds.

Pure: no I/O. ``validate_write`` is the one gate every write passes before any SQL runs, so a
value the database would refuse (a NUL byte fails a whole PostgreSQL batch) is a precise
``InvalidWrite`` at the caller instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bridge.errors import BridgeError

SET_STOCK = "set_stock"  # the kind of the commands consumer's writes (storage never names it)
MAX_KEY_LENGTH = 200
MAX_NAME_LENGTH = 200


class OutboxError(BridgeError):
    """The outbox database cannot be opened, migrated or used as asked."""


class InvalidWrite(BridgeError):
    """A write the outbox refuses before touching the database; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Status(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    DEAD = "dead"
    SUPERSEDED = "superseded"


LIVE = (Status.PENDING, Status.IN_FLIGHT)
TERMINAL = (Status.DONE, Status.DEAD, Status.SUPERSEDED)


@dataclass(frozen=True, slots=True)
class NewWrite:
    """A write a consumer wants sent; ``target`` is a key such as ``variant:5001``, ``group:77``.

    ``supersedes``: a newer write of the same (shop, target, kind) replaces this one while it is
    still pending (only the latest value matters, e.g. a stock level). ``priority``: higher rows of
    a shop are claimed first (e.g. a sell-out), never ahead of an older live row of their target.
    """

    shop: str
    kind: str
    target: str
    payload: Mapping[str, Any]
    idempotency_key: str
    supersedes: bool = False
    priority: int = 0


@dataclass(frozen=True, slots=True)
class AddResult:
    """The new row id, or the existing one if ``duplicate`` (same content) or ``conflict``.

    ``conflict``: the shop already has a row with this idempotency key and *different* content
    (kind, target or payload); nothing was inserted and the caller must refuse the write.
    ``superseded``: the newest pending row this one replaced, if any.
    """

    id: int
    duplicate: bool = False
    superseded: int | None = None
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    shop: str
    kind: str
    target: str
    payload: Mapping[str, Any]
    idempotency_key: str
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float
    supersedes: int | None  # the id of the newest row this one superseded
    lease_owner: str | None
    lease_until: float | None
    done_at: float | None
    superseding: bool = False  # NewWrite.supersedes, as stored
    priority: int = 0


@dataclass(frozen=True, slots=True)
class ClaimedLane:
    """A lane taken (or renewed) with its claimed rows and their send slots, ascending."""

    rows: list[OutboxRow]
    slots: list[float]


@dataclass(frozen=True, slots=True)
class LaneClaim:
    """One shop's part of ``claim_lanes``: up to ``limit`` rows, slots at ``rate``/``burst`` up to
    ``horizon``."""

    shop: str
    limit: int
    rate: float
    burst: int
    horizon: float | None = None


def validate_key(key: object) -> str:
    """An idempotency key: printable ASCII (space to ``~``), 1 to 200 characters."""
    if not isinstance(key, str):
        raise InvalidWrite("idempotency_key must be a string")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidWrite(f"idempotency_key must be 1 to {MAX_KEY_LENGTH} characters")
    if not all(" " <= c <= "~" for c in key):
        raise InvalidWrite("idempotency_key must be printable ASCII")
    return key


def _name(value: object, field: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidWrite(f"{field} must be a string of 1 to {MAX_NAME_LENGTH} characters")
    if not value.isprintable():
        raise InvalidWrite(f"{field} must not contain control characters")


def _json_text_free_of_nul(value: object, path: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidWrite(f"{path} contains a NUL character")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise InvalidWrite(f"{path} has a key that is not a NUL-free string")
            _json_text_free_of_nul(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _json_text_free_of_nul(item, f"{path}[{index}]")


def validate_write(write: NewWrite) -> None:
    """Refuse what either database would choke on, before any SQL runs (raises InvalidWrite)."""
    validate_key(write.idempotency_key)
    _name(write.shop, "shop")
    _name(write.kind, "kind")
    _name(write.target, "target")
    if not isinstance(write.payload, Mapping):
        raise InvalidWrite("payload must be a JSON object")
    _json_text_free_of_nul(write.payload, "payload")
    if isinstance(write.priority, bool) or not isinstance(write.priority, int):
        raise InvalidWrite("priority must be an integer")
    if not -(2**31) <= write.priority < 2**31:
        raise InvalidWrite("priority must fit in 32 bits")
