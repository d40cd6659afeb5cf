"""What an input meant (``Outcome``) and the two ways an input ends: settle or move the pool."""

from __future__ import annotations

from dataclasses import dataclass, replace

from consumers.inventory_sync.state import GroupState, Kind, LastChange, MemberState


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input meant. ``delta`` is what it added to the pool; ``pool`` the pool after.

    ``settled``: outbox ids (None for writes recorded without one) of our writes this input
    confirmed; ``expired``: those dropped because they waited longer than ``echo_timeout``.
    """

    kind: Kind
    member: str | None
    delta: int = 0
    pool: int | None = None
    settled: tuple[int | None, ...] = ()
    expired: tuple[int | None, ...] = ()

    @property
    def oversold(self) -> bool:
        """The pool is negative: the group sold more than it had (kept, never clamped)."""
        return self.pool is not None and self.pool < 0


def settle(
    state: GroupState,
    member: str,
    m: MemberState,
    kind: Kind,
    settled: tuple[int | None, ...],
    expired: tuple[int | None, ...],
) -> tuple[GroupState, Outcome]:
    new = state.with_member(member, m)
    return new, report(kind, member, new, settled=settled, expired=expired)


def move_pool(
    state: GroupState,
    member: str,
    m: MemberState,
    kind: Kind,
    delta: int,
    now: float,
    settled: tuple[int | None, ...],
    expired: tuple[int | None, ...],
) -> tuple[GroupState, Outcome]:
    """Add ``delta`` to the pool (which exists) and note the change."""
    pool = (state.pool or 0) + delta
    last = LastChange(at=now, member=member, delta=delta, kind=kind)
    new = replace(state.with_member(member, m), pool=pool, last_change=last)
    return new, report(kind, member, new, delta=delta, settled=settled, expired=expired)


def report(
    kind: Kind,
    member: str | None,
    state: GroupState,
    *,
    delta: int = 0,
    settled: tuple[int | None, ...] = (),
    expired: tuple[int | None, ...] = (),
) -> Outcome:
    return Outcome(kind, member, delta, state.pool, settled, expired)
