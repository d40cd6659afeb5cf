"""Pool arithmetic, echo matching and planning for one sync group (docs/inventory-sync.md).

Every input is a pure function ``(state, …) -> (new state, Outcome)``. Nothing here plans writes as
a side effect: the caller applies a whole batch of inputs, then calls :func:`plan` once per touched
group, inserts the planned rows into the outbox and calls :func:`record_writes` with the row ids,
all in one transaction. Time is always passed in (``now``, Unix seconds).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from consumers.inventory_sync.outcome import Outcome, move_pool, report, settle
from consumers.inventory_sync.state import (
    GroupState,
    Kind,
    LastChange,
    MemberState,
    PendingWrite,
    StateError,
)


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """One set-stock write :func:`plan` asks for; ``seq`` makes ``idempotency_key`` replayable."""

    member: str
    quantity: int
    sell_out: bool
    idempotency_key: str
    seq: int


def observe(
    state: GroupState,
    member: str,
    level: int,
    previous: int | None,
    now: float,
    *,
    echo_timeout: float,
    sent: Mapping[int, float | None] | None = None,
    seen_at: float | None = None,
) -> tuple[GroupState, Outcome]:
    """Apply a level observed from the platform; ``previous`` is its old level, when sent.

    ``sent`` maps outbox ids of pending writes to when they were first sent (None: never), and
    ``seen_at`` is when the webhook reached the bridge. A platform can only echo a write after it
    was sent, so a level equal to a write sent later than the change was seen (or never sent) is
    a change of the platform's own (a sale that happens to leave the value we queued).
    """
    unsent = _not_yet_sent(sent or {}, seen_at)
    m = state.member(member)
    echo = None if m.orders or state.pool is None else _match(m.pending, level, unsent)
    if echo is not None:  # matched before expiring: a late echo is still ours
        settled = _ids(m.pending[: echo + 1])
        m, expired = expire(
            replace(m, observed=level, pending=m.pending[echo + 1 :]), now, echo_timeout
        )
        return settle(state, member, m, Kind.ECHO, settled, expired)
    m, expired = expire(m, now, echo_timeout)
    if m.orders:
        return state.with_member(member, m), report(Kind.IGNORED, member, state, expired=expired)
    if state.pool is None:
        return _first_contact(state, member, m, level, now, expired)
    if m.observed is None and previous is None:
        m = replace(m, observed=level, last_change_at=now)
        return settle(state, member, m, Kind.BASELINE, (), expired)
    if level == m.observed:
        return settle(state, member, m, Kind.DUPLICATE, (), expired)
    delta, through = _delta(m, level, previous, unsent)
    settled = _ids(m.pending[:through])
    m = replace(m, observed=level, pending=m.pending[through:], last_change_at=now)
    return move_pool(state, member, m, Kind.EXTERNAL, delta, now, settled, expired)


def reconcile(
    state: GroupState, member: str, real: int, now: float, *, echo_timeout: float
) -> tuple[GroupState, Outcome]:
    """Apply a level read through the platform API (drift detection after lost webhooks)."""
    m = state.member(member)
    echo = None if m.orders or state.pool is None else _match(m.pending, real)
    if echo is not None:  # matched before expiring: a write whose echo was lost is still ours
        settled = _ids(m.pending[: echo + 1])
        m, expired = expire(
            replace(m, observed=real, pending=m.pending[echo + 1 :]), now, echo_timeout
        )
        return settle(state, member, m, Kind.ECHO, settled, expired)
    m, expired = expire(m, now, echo_timeout)
    if state.pool is None:
        return _first_contact(state, member, m, real, now, expired)
    if m.pending:
        return settle(state, member, m, Kind.IN_FLIGHT, (), expired)
    if m.observed is None:
        m = replace(m, observed=real, last_change_at=now)
        return settle(state, member, m, Kind.BASELINE, (), expired)
    if real == m.observed:
        return settle(state, member, m, Kind.DUPLICATE, (), expired)
    drifted, delta = m.drift_count + 1, real - m.observed
    if m.orders:  # the pool moves only with orders here: the platform is wrong, rewrite it
        m = replace(m, observed=real, last_change_at=now, drift_count=drifted)
        return settle(state, member, m, Kind.DRIFT, (), expired)
    m = replace(m, observed=real, last_change_at=now, drift_count=drifted)
    return move_pool(state, member, m, Kind.DRIFT, delta, now, (), expired)


def recount(state: GroupState, qty: int, now: float) -> tuple[GroupState, Outcome]:
    """Set the pool to ``qty`` (``sync-groups set GROUP QTY``) and push it to every member."""
    delta = 0 if state.pool is None else qty - state.pool
    members = {key: replace(m, force=True) for key, m in state.members.items()}
    last = LastChange(at=now, member=None, delta=delta, kind=Kind.RECOUNT)
    new = replace(state, pool=qty, members=members, last_change=last)
    return new, Outcome(kind=Kind.RECOUNT, member=None, delta=delta, pool=qty)


def target(state: GroupState, member: str) -> int | None:
    """The level the member should show: ``max(0, pool - buffer)``; None before first contact."""
    if state.pool is None:
        return None
    return max(0, state.pool - state.member(member).buffer)


def plan(state: GroupState) -> list[PlannedWrite]:
    """One set-stock write per member whose expected level is not its target (keys replayable)."""
    writes: list[PlannedWrite] = []
    if state.pool is None:
        return writes
    for key in sorted(state.members):
        m = state.members[key]
        quantity = max(0, state.pool - m.buffer)
        if m.force or m.expected != quantity:
            seq = state.seq + len(writes)
            ikey = f"inventory-sync:{state.group}:{key}:{seq}"
            writes.append(PlannedWrite(key, quantity, quantity == 0, ikey, seq))
    return writes


def record_writes(
    state: GroupState,
    written: Sequence[tuple[PlannedWrite, int | None, int | None]],
    now: float,
) -> GroupState:
    """Note the rows the caller added: ``(planned, outbox_id, superseded_outbox_id | None)``.

    Each becomes the member's newest pending write; the superseded row (never sent now) is
    dropped from the member's pending writes, since its value will never be echoed.
    """
    seq = state.seq
    for planned, outbox_id, superseded in written:
        m = state.member(planned.member)
        kept = tuple(p for p in m.pending if superseded is None or p.outbox_id != superseded)
        entry = PendingWrite(value=planned.quantity, outbox_id=outbox_id, at=now)
        state = state.with_member(planned.member, replace(m, pending=(*kept, entry), force=False))
        seq = max(seq, planned.seq + 1)
    return replace(state, seq=seq)


def drop_write(state: GroupState, member: str, outbox_id: int) -> GroupState:
    """Forget a write that will never land (its outbox row went dead)."""
    m = state.member(member)
    pending = tuple(p for p in m.pending if p.outbox_id != outbox_id)
    return state.with_member(member, replace(m, pending=pending))


def expire(
    m: MemberState, now: float, echo_timeout: float
) -> tuple[MemberState, tuple[int | None, ...]]:
    """Drop pending writes older than ``echo_timeout`` seconds; return their outbox ids.

    Orders-sourced members never echo: their newest expired write is taken as landed.
    """
    if echo_timeout <= 0:
        raise StateError(f"echo_timeout must be > 0, got {echo_timeout}")
    old = tuple(p for p in m.pending if now - p.at > echo_timeout)
    if not old:
        return m, ()
    live = tuple(p for p in m.pending if now - p.at <= echo_timeout)
    observed = old[-1].value if m.orders else m.observed
    return replace(m, pending=live, observed=observed), _ids(old)


def _delta(
    m: MemberState, level: int, previous: int | None, unsent: Collection[int] = frozenset()
) -> tuple[int, int]:
    """The pool delta of an external change and how many pending writes it shows landed.

    ``previous`` counts when it is the observed level or the value of one of our writes (that
    write and older ones landed before this change); otherwise the level jumped over changes we
    missed and ``level - observed`` (telescoping) is the honest delta.
    """
    if previous is not None:
        if previous == m.observed:
            return level - previous, 0
        landed = _match(m.pending, previous, unsent)
        if landed is not None:
            return level - previous, landed + 1
        if m.observed is None:
            return level - previous, 0
    if m.observed is None:  # pragma: no cover - observe() takes the baseline branch first
        raise StateError("an unseen member without a previous level has no delta")
    return level - m.observed, 0


def _not_yet_sent(sent: Mapping[int, float | None], seen_at: float | None) -> frozenset[int]:
    """Outbox ids the platform cannot have applied before the change seen at ``seen_at``."""
    return frozenset(
        row
        for row, first in sent.items()
        if first is None or (seen_at is not None and seen_at < first)
    )


def _match(
    pending: tuple[PendingWrite, ...], level: int, unsent: Collection[int] = frozenset()
) -> int | None:
    """Index of the oldest pending write whose value is ``level`` (conservative: settles least),
    among those that may have reached the platform (not ``unsent``)."""
    for index, p in enumerate(pending):
        if p.outbox_id is not None and p.outbox_id in unsent:
            return None  # writes of one target go out in order: the rest were not sent either
        if p.value == level:
            return index
    return None


def _ids(pending: tuple[PendingWrite, ...]) -> tuple[int | None, ...]:
    return tuple(p.outbox_id for p in pending)


def _first_contact(
    state: GroupState,
    member: str,
    m: MemberState,
    level: int,
    now: float,
    expired: tuple[int | None, ...],
) -> tuple[GroupState, Outcome]:
    settled = _ids(m.pending)
    m = replace(m, observed=level, pending=(), last_change_at=now)
    last = LastChange(at=now, member=member, delta=0, kind=Kind.FIRST_CONTACT)
    new = replace(state.with_member(member, m), pool=level, last_change=last)
    return new, report(Kind.FIRST_CONTACT, member, new, settled=settled, expired=expired)
