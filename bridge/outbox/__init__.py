"""Transactional outbox: consumers add writes in their DB transaction, the relay sends them.

Invariants: docs/outbox.md. Implementations: ``sqlite`` (embedded default), ``postgres``.
"""

from bridge.outbox.store import (
    SET_STOCK,
    AddResult,
    InvalidWrite,
    NewWrite,
    OperatorStore,
    OutboxError,
    OutboxRow,
    OutboxStore,
    OutboxTx,
    RelayStore,
    Status,
    open_store,
    validate_key,
)

__all__ = [
    "SET_STOCK",
    "AddResult",
    "InvalidWrite",
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
]
