"""The outbox's public names in one place (kept for the modules that import them from here).

The contract lives in :mod:`bridge.outbox.contract` (roles) and :mod:`bridge.outbox.rows`
(values), the factory in :mod:`bridge.outbox.factory`; this module only re-exports them and
imports no implementation.
"""

from __future__ import annotations

from bridge.outbox.contract import OperatorStore, OutboxStore, OutboxTx, RelayStore
from bridge.outbox.factory import open_store
from bridge.outbox.rows import (
    SET_STOCK,
    TERMINAL,
    AddResult,
    ClaimedLane,
    InvalidWrite,
    LaneClaim,
    NewWrite,
    OutboxError,
    OutboxRow,
    Status,
    validate_key,
    validate_write,
)

__all__ = [
    "SET_STOCK",
    "TERMINAL",
    "AddResult",
    "ClaimedLane",
    "InvalidWrite",
    "LaneClaim",
    "NewWrite",
    "OperatorStore",
    "OutboxError",
    "OutboxRow",
    "OutboxStore",
    "OutboxTx",
    "RelayStore",
    "Status",
    "open_store",
    "validate_key",
    "validate_write",
]
