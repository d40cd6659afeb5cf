"""Orders as the stock source (``stock_source = "orders"``): a line debits once, credits once.

The per-line bookkeeping is a tiny :class:`OrderLine` the caller stores under its own key (for
example namespace ``inventory-sync-orders``, key ``{shop}/{order_id}/{line}``), so the group state
stays bounded however many orders a shop takes. Lines may be purged once an order can no longer be
cancelled or returned (docs/inventory-sync.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from consumers.inventory_sync.outcome import Outcome, move_pool, report, settle
from consumers.inventory_sync.pool import expire
from consumers.inventory_sync.state import GroupState, Kind, StateError


class OrderAction(StrEnum):
    CREATED = "created"
    PAID = "paid"
    CANCELLED = "cancelled"
    RETURNED = "returned"


DEBITS = frozenset({OrderAction.CREATED, OrderAction.PAID})


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One order line's effect so far: units debited, and whether it was credited back."""

    debited: int = 0
    closed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"debited": self.debited, "closed": self.closed}

    @classmethod
    def from_json(cls, value: Any) -> OrderLine:
        if not isinstance(value, dict):
            raise StateError("order line state must be an object")
        debited, closed = value.get("debited"), value.get("closed")
        if isinstance(debited, bool) or not isinstance(debited, int) or debited < 0:
            raise StateError("order line debited must be an integer >= 0")
        if not isinstance(closed, bool):
            raise StateError("order line closed must be true or false")
        return cls(debited=debited, closed=closed)


def apply_order(
    state: GroupState,
    line: OrderLine | None,
    member: str,
    action: OrderAction,
    qty: int,
    now: float,
    *,
    echo_timeout: float,
) -> tuple[GroupState, OrderLine, Outcome]:
    """Apply one order event for one line; ``line`` is the stored line state (None: first event).

    created/paid debit ``qty`` once, whichever comes first; cancelled/returned credit what was
    debited, once; a cancellation of a line never debited only closes it (the platform put back
    what it never took from us).
    """
    if qty < 0:
        raise StateError(f"order quantity must be >= 0, got {qty}")
    line = line or OrderLine()
    m, expired = expire(state.member(member), now, echo_timeout)
    if not m.orders:
        return state.with_member(member, m), line, report(Kind.IGNORED, member, state)
    delta, new_line = _effect(line, action, qty)
    if delta == 0:
        new, outcome = settle(state, member, m, Kind.DUPLICATE, (), expired)
        return new, new_line, outcome
    # The platform already moved this member's level by delta. If one of our writes may still be
    # in flight it may land after the order and overwrite it, so the member is rewritten.
    shifted = tuple(replace(p, value=p.value + delta) for p in m.pending)
    observed = None if m.observed is None else m.observed + delta
    m = replace(m, observed=observed, pending=shifted, force=m.force or bool(shifted))
    m = replace(m, last_change_at=now)
    if state.pool is None:  # before first contact: the first level will include this order
        new, outcome = settle(state, member, m, Kind.ORDER, (), expired)
        return new, new_line, outcome
    new, outcome = move_pool(state, member, m, Kind.ORDER, delta, now, (), expired)
    return new, new_line, outcome


def _effect(line: OrderLine, action: OrderAction, qty: int) -> tuple[int, OrderLine]:
    if line.closed:
        return 0, line
    if action in DEBITS:
        if line.debited or qty == 0:
            return 0, line
        return -qty, OrderLine(debited=qty, closed=False)
    if line.debited:
        return line.debited, OrderLine(debited=line.debited, closed=True)
    return 0, OrderLine(debited=0, closed=True)
