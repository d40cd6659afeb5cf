"""The inventory-sync work inside one outbox transaction: load group states, queue writes, save.

State lives in the outbox database next to the rows it plans (``OutboxTx.get_state``), so pool,
member state and set-stock rows commit together. Namespaces:

- ``inventory-sync`` / ``{group id}``: the core's ``GroupState`` JSON;
- ``inventory-sync-orders`` / ``{shop}/{order id}/{variant id}``: the core's ``OrderLine``;
- ``inventory-sync-offsets`` / ``{topic}:{partition}``: the last offset applied (records at or
  below it are skipped, so a redelivered batch changes nothing).

Lock order, the same in every process: a partition's offset key, then group keys in sorted order,
then order lines (only ever read under their group's lock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from bridge.commands import SetStock, to_write
from bridge.log import get_logger
from bridge.outbox.store import NewWrite, OutboxTx
from consumers.inventory_sync.directory import Directory, Member
from consumers.inventory_sync.pool import PlannedWrite, plan, record_writes
from consumers.inventory_sync.state import GroupState, configure, new_group

GROUPS = "inventory-sync"
ORDERS = "inventory-sync-orders"
OFFSETS = "inventory-sync-offsets"
SELL_OUT_PRIORITY = 10  # a write taking a member to 0 goes ahead of the shop's other writes

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Queued:
    """A set-stock row this transaction added (or found, ``duplicate``) for a member."""

    group: str
    member: str
    shop: str
    target: str
    quantity: int
    outbox_id: int
    duplicate: bool
    superseded: int | None


async def load(tx: OutboxTx, directory: Directory, group: str) -> GroupState:
    """The group's stored state (locked until the transaction ends), in line with the config."""
    raw = await tx.get_state(GROUPS, group)
    specs = directory.specs(group)
    if raw is None:
        return new_group(group, specs)
    return configure(GroupState.from_json(raw), specs)


async def load_all(
    tx: OutboxTx, directory: Directory, groups: Iterable[str]
) -> dict[str, GroupState]:
    """Several groups, locked in sorted order (two replicas never wait on each other in a cycle)."""
    return {g: await load(tx, directory, g) for g in sorted(set(groups))}


async def save(tx: OutboxTx, state: GroupState) -> None:
    await tx.put_state(GROUPS, state.group, state.to_json())


def new_write(member: Member, planned: PlannedWrite) -> NewWrite:
    """The ``set_stock`` outbox row of a planned write (the payload ``bridge.commands`` sends)."""
    key = planned.idempotency_key
    write = to_write(SetStock(key, member.shop, member.target, planned.quantity, key))
    return replace(write, supersedes=True, priority=SELL_OUT_PRIORITY if planned.sell_out else 0)


async def queue_writes(
    tx: OutboxTx, directory: Directory, state: GroupState, now: float
) -> tuple[GroupState, list[Queued]]:
    """Plan the group's writes once, add them to the outbox, note the row ids in the state."""
    written: list[tuple[PlannedWrite, int | None, int | None]] = []
    queued: list[Queued] = []
    planned_writes = plan(state)
    for planned in planned_writes:
        member = directory.member(state.group, planned.member)
        write = new_write(member, planned)
        result = await tx.add(write, now)
        if result.conflict:
            # A key of ours naming another write: the state and the outbox disagree. Refuse it
            # loudly rather than pretend it was queued; the next change plans a fresh key.
            log.error(
                "sync_write_conflict",
                group=state.group,
                member=planned.member,
                idempotency_key=write.idempotency_key,
            )
            continue
        written.append((planned, result.id, result.superseded))
        queued.append(
            Queued(
                state.group,
                planned.member,
                member.shop,
                write.target,
                planned.quantity,
                result.id,
                result.duplicate,
                result.superseded,
            )
        )
    state = record_writes(state, written, now)
    seq = max([state.seq, *(p.seq + 1 for p in planned_writes)])  # never reuse a refused key
    return replace(state, seq=seq), queued
