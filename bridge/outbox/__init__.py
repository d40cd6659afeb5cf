"""Transactional outbox: consumers add writes in their DB transaction, the relay sends them.

Invariants: docs/outbox.md. Implementations: ``sqlite`` (embedded default), ``postgres``.
"""

from bridge.outbox.store import (
    SET_STOCK,
    AddResult,
    NewWrite,
    OutboxError,
    OutboxRow,
    OutboxStore,
    OutboxTx,
    Status,
    open_store,
)

__all__ = [
    "SET_STOCK",
    "AddResult",
    "NewWrite",
    "OutboxError",
    "OutboxRow",
    "OutboxStore",
    "OutboxTx",
    "Status",
    "open_store",
]
