"""The state of one sync group: pool, members, planned-write counter; JSON round-trip.

Plain frozen dataclasses with no I/O. ``GroupState.to_json()`` gives plain dicts, lists, ints,
strings and floats (what ``OutboxTx.put_state`` stores); ``GroupState.from_json`` reads it back and
refuses anything else with a ``StateError`` that names the bad field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bridge.errors import BridgeError

STATE_VERSION = 1


class StateError(BridgeError):
    """A stored group state (or a member key) is not what this version of the core can read."""


class UnknownMember(StateError):
    """An input names a member that is not configured in the group."""


class Kind(StrEnum):
    """What an input meant (the ``Outcome.kind`` of every input function)."""

    FIRST_CONTACT = "first_contact"
    ECHO = "echo"
    EXTERNAL = "external"
    BASELINE = "baseline"
    DUPLICATE = "duplicate"
    DRIFT = "drift"
    IN_FLIGHT = "in_flight"
    ORDER = "order"
    RECOUNT = "recount"
    IGNORED = "ignored"


def member_key(shop: str, target: str) -> str:
    """The member id ``"{shop}/{target}"``; ``target`` is ``variant:5001`` or ``group:77``."""
    if not shop or "/" in shop:
        raise StateError(f"shop id {shop!r} must be non-empty and contain no '/'")
    if not target:
        raise StateError(f"member target of shop {shop!r} must be non-empty")
    return f"{shop}/{target}"


def split_member_key(key: str) -> tuple[str, str]:
    """``(shop, target)`` of a key made by :func:`member_key`."""
    shop, sep, target = key.partition("/")
    if not sep or not shop or not target:
        raise StateError(f"member key {key!r} is not 'shop/target'")
    return shop, target


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """A configured member: its key, ``buffer`` held back, and whether orders are its source."""

    key: str
    buffer: int = 0
    orders: bool = False


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A set-stock write the bridge made to a member that was not echoed back yet."""

    value: int
    outbox_id: int | None
    at: float


@dataclass(frozen=True, slots=True)
class MemberState:
    """What the bridge believes about one member.

    ``observed``: the level last observed from the platform (None: never observed).
    ``pending``: our un-echoed writes, oldest first. ``force``: plan a write even when the
    expected level already equals the target (an order raced one of our writes).
    """

    observed: int | None = None
    pending: tuple[PendingWrite, ...] = ()
    buffer: int = 0
    orders: bool = False
    force: bool = False
    last_change_at: float | None = None
    drift_count: int = 0

    @property
    def expected(self) -> int | None:
        """The level the member shows once our writes landed: newest pending value, or observed."""
        return self.pending[-1].value if self.pending else self.observed


@dataclass(frozen=True, slots=True)
class LastChange:
    """The last input that moved the pool (for ``commerce-bridge sync-groups show``)."""

    at: float
    member: str | None
    delta: int
    kind: Kind


@dataclass(frozen=True, slots=True)
class GroupState:
    """One sync group. ``pool`` None means no first contact yet; ``seq`` numbers planned writes."""

    group: str
    pool: int | None = None
    members: Mapping[str, MemberState] = field(default_factory=dict)
    seq: int = 0
    last_change: LastChange | None = None

    def member(self, key: str) -> MemberState:
        """The member's state, or ``UnknownMember``."""
        try:
            return self.members[key]
        except KeyError:
            raise UnknownMember(f"member {key!r} is not in sync group {self.group!r}") from None

    def with_member(self, key: str, member: MemberState) -> GroupState:
        """A copy with one member replaced."""
        return replace(self, members={**self.members, key: member})

    def to_json(self) -> dict[str, Any]:
        """Plain JSON value (dicts, lists, ints, strings, floats, None) with a version field."""
        return {
            "version": STATE_VERSION,
            "group": self.group,
            "pool": self.pool,
            "seq": self.seq,
            "last_change": _last_change_json(self.last_change),
            "members": {key: _member_json(m) for key, m in sorted(self.members.items())},
        }

    @classmethod
    def from_json(cls, value: Any) -> GroupState:
        """Read what :meth:`to_json` wrote; ``StateError`` naming the field on anything else."""
        data = _dict(value, "state")
        if data.get("version") != STATE_VERSION:
            raise StateError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
        members = _dict(data.get("members"), "members")
        last = data.get("last_change")
        return cls(
            group=_str(data.get("group"), "group"),
            pool=_opt_int(data.get("pool"), "pool"),
            seq=_int(data.get("seq"), "seq"),
            last_change=None if last is None else _last_change_from(last),
            members={_str(k, "members key"): _member_from(v, k) for k, v in members.items()},
        )


def new_group(group: str, specs: Iterable[MemberSpec]) -> GroupState:
    """A group before first contact, with its configured members."""
    return configure(GroupState(group=group), specs)


def configure(state: GroupState, specs: Iterable[MemberSpec]) -> GroupState:
    """Bring a stored state in line with the config: add, drop, re-buffer members.

    Call it after loading a state and before applying inputs, so buffers and the stock source
    always come from the current config. Unknown members are dropped with their state.
    """
    members: dict[str, MemberState] = {}
    for spec in specs:
        if spec.key in members:
            raise StateError(f"member {spec.key!r} appears twice in sync group {state.group!r}")
        if spec.buffer < 0:
            raise StateError(f"buffer of member {spec.key!r} must be >= 0, got {spec.buffer}")
        split_member_key(spec.key)
        old = state.members.get(spec.key, MemberState())
        members[spec.key] = replace(old, buffer=spec.buffer, orders=spec.orders)
    return replace(state, members=members)


def _member_json(m: MemberState) -> dict[str, Any]:
    return {
        "observed": m.observed,
        "pending": [[p.value, p.outbox_id, p.at] for p in m.pending],
        "buffer": m.buffer,
        "orders": m.orders,
        "force": m.force,
        "last_change_at": m.last_change_at,
        "drift_count": m.drift_count,
    }


def _member_from(value: Any, key: str) -> MemberState:
    data = _dict(value, f"members.{key}")
    pending = data.get("pending")
    if not isinstance(pending, list):
        raise StateError(f"members.{key}.pending must be a list")
    return MemberState(
        observed=_opt_int(data.get("observed"), f"members.{key}.observed"),
        pending=tuple(_pending_from(p, f"members.{key}.pending") for p in pending),
        buffer=_int(data.get("buffer"), f"members.{key}.buffer"),
        orders=_bool(data.get("orders"), f"members.{key}.orders"),
        force=_bool(data.get("force"), f"members.{key}.force"),
        last_change_at=_opt_float(data.get("last_change_at"), f"members.{key}.last_change_at"),
        drift_count=_int(data.get("drift_count"), f"members.{key}.drift_count"),
    )


def _pending_from(value: Any, where: str) -> PendingWrite:
    if not isinstance(value, list) or len(value) != 3:
        raise StateError(f"{where} entries must be [value, outbox_id, at]")
    return PendingWrite(
        value=_int(value[0], where), outbox_id=_opt_int(value[1], where), at=_float(value[2], where)
    )


def _last_change_json(c: LastChange | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"at": c.at, "member": c.member, "delta": c.delta, "kind": c.kind.value}


def _last_change_from(value: Any) -> LastChange:
    data = _dict(value, "last_change")
    member = data.get("member")
    if member is not None and not isinstance(member, str):
        raise StateError("last_change.member must be a string or null")
    try:
        kind = Kind(_str(data.get("kind"), "last_change.kind"))
    except ValueError:
        raise StateError(f"last_change.kind {data.get('kind')!r} is unknown") from None
    return LastChange(
        at=_float(data.get("at"), "last_change.at"),
        member=member,
        delta=_int(data.get("delta"), "last_change.delta"),
        kind=kind,
    )


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StateError(f"{where} must be an object")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise StateError(f"{where} must be a string")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise StateError(f"{where} must be true or false")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateError(f"{where} must be an integer")
    return value


def _opt_int(value: Any, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StateError(f"{where} must be a number")
    return float(value)


def _opt_float(value: Any, where: str) -> float | None:
    return None if value is None else _float(value, where)
