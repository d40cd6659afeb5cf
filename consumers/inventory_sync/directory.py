"""Who is in which sync group: the configured members, indexed for record mapping.

Built once at start-up from ``[[sync_groups]]`` (plus the variant ids of members that are a
platform's own sync group, from the config or the platform's API). Looking a variant up is one
dict access, so events
of variants outside every group cost nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from bridge.config import Config, SyncMember
from bridge.targets import StockTarget
from consumers.inventory_sync.state import MemberSpec, member_key


@dataclass(frozen=True, slots=True)
class Member:
    """One configured member: its group, core member key, where its stock is written."""

    group: str
    shop: str
    target: StockTarget  # passed as it is to the outbox payload and the platform client
    target_key: str  # the outbox target column: ``variant:5001`` or ``group:77``
    buffer: int = 0
    orders: bool = False  # the shop's stock_source is "orders"
    variants: tuple[str, ...] = ()  # a platform group's variant ids

    @property
    def key(self) -> str:
        """The member id the core uses: ``{shop}/variant:5001`` or ``{shop}/group:77``."""
        return member_key(self.shop, self.target_key)

    @property
    def variant(self) -> str | None:
        """The variant id of a variant member."""
        kind, _, ident = self.target_key.partition(":")
        return ident if kind == "variant" else None

    @property
    def platform_group(self) -> str | None:
        """The id of a member that is a platform's own sync group (one count shared in a shop)."""
        kind, _, ident = self.target_key.partition(":")
        return ident if kind == "group" else None

    @property
    def spec(self) -> MemberSpec:
        return MemberSpec(self.key, buffer=self.buffer, orders=self.orders)


class Directory:
    """The sync groups and a (shop, variant id) → member index."""

    def __init__(self, members: Iterable[Member]) -> None:
        groups: dict[str, list[Member]] = {}
        self._by_variant: dict[tuple[str, str], Member] = {}
        self._by_key: dict[tuple[str, str], Member] = {}
        listed = list(members)
        for m in listed:
            groups.setdefault(m.group, []).append(m)
            self._by_key[(m.group, m.key)] = m
            if m.variant is not None:
                self._by_variant[(m.shop, m.variant)] = m
        for m in listed:  # a variant configured as a member itself wins over a group's list
            for variant in m.variants:
                self._by_variant.setdefault((m.shop, variant), m)
        self.groups: Mapping[str, tuple[Member, ...]] = {g: tuple(ms) for g, ms in groups.items()}

    @classmethod
    def from_config(cls, config: Config) -> Directory:
        members = []
        for group in config.sync_groups:
            for m in group.members:
                shop = config.shops[m.shop]
                members.append(_member(group.id, m, orders=shop.stock_source == "orders"))
        return cls(members)

    def for_variant(self, shop: str, variant: str) -> Member | None:
        """The member a variant event of ``shop`` is about, or None (not synced)."""
        return self._by_variant.get((shop, variant))

    def member(self, group: str, key: str) -> Member:
        return self._by_key[(group, key)]

    def specs(self, group: str) -> list[MemberSpec]:
        return [m.spec for m in self.groups[group]]

    def members(self) -> list[Member]:
        return [m for group in sorted(self.groups) for m in self.groups[group]]

    def groups_without_variants(self) -> list[Member]:
        """Platform-group members whose variant ids are not known yet."""
        return [m for m in self.members() if m.platform_group is not None and not m.variants]

    def with_variants(self, found: Mapping[tuple[str, str], Sequence[str]]) -> Directory:
        """A copy where the platform-group members ``(group, key)`` know their variant ids."""
        return Directory(
            replace(m, variants=tuple(found[(m.group, m.key)])) if (m.group, m.key) in found else m
            for m in self.members()
        )


def _member(group: str, m: SyncMember, *, orders: bool) -> Member:
    return Member(group, m.shop, m.target, m.target.key, m.buffer, orders, m.variants)
