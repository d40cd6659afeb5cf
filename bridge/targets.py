"""Where a stock write goes, as a platform-neutral value, and its two encodings.

A :class:`StockTarget` is a ``kind`` (``variant``, ``group``, …) and an ``id``, plus the product a
variant belongs to when the platform addresses variants under their product. Platforms declare the
target *fields* they accept (:class:`TargetField`, e.g. ``variant`` or a group field); the same
field names are the keys of a command's ``target`` object, of a ``[[sync_groups]]`` member and of a
``set_stock`` outbox payload. The outbox ``target`` column is ``{kind}:{id}`` (``variant:5001``,
``group:77``). Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VARIANT = "variant"
GROUP = "group"
PRODUCT_FIELD = "product"


@dataclass(frozen=True, slots=True)
class StockTarget:
    """One thing whose stock a write sets: ``StockTarget("variant", "5001", product="1001")``."""

    kind: str
    id: str
    product: str | None = None

    @property
    def key(self) -> str:
        """The outbox ``target`` column: one key per thing whose stock is written."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class TargetField:
    """A field naming a target of ``kind``; ``what`` completes "only <Platform> shops have …"."""

    name: str
    kind: str
    what: str


class TargetError(ValueError):
    """A target object that names no target, several, or one of a field nobody declared."""


class TargetCodec:
    """Reads and writes targets through a set of declared fields (one field per kind)."""

    def __init__(self, fields: Iterable[TargetField]) -> None:
        self.fields: tuple[TargetField, ...] = tuple(fields)
        by_name = {f.name: f for f in self.fields}
        by_kind = {f.kind: f for f in self.fields}
        if len(by_name) != len(self.fields) or len(by_kind) != len(self.fields):
            raise ValueError("target fields must have distinct names and kinds")
        self._by_name = by_name
        self._by_kind = by_kind
        self._names = tuple(f.name for f in self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def field(self, name: str) -> TargetField | None:
        return self._by_name.get(name)

    def named(self, values: Mapping[str, str | None]) -> tuple[TargetField, str]:
        """The one declared field set in ``values`` and its id; TargetError otherwise."""
        present = [(f, v) for f in self.fields if (v := values.get(f.name)) is not None]
        if len(present) != 1:
            raise TargetError(f"needs exactly one of {' or '.join(self.names)}")
        return present[0]

    def parse(self, values: Mapping[str, str | None]) -> StockTarget:
        """The target of a target object (``{"variant": "5001", "product": "1001"}``)."""
        target_field, target_id = self.named(values)
        return StockTarget(target_field.kind, target_id, values.get(PRODUCT_FIELD))

    def encode(self, target: StockTarget) -> dict[str, str]:
        """The inverse of :meth:`parse`: the target object of ``target``."""
        target_field = self._by_kind.get(target.kind)
        if target_field is None:
            raise TargetError(f"no field for target kind {target.kind!r}")
        encoded = {target_field.name: target.id}
        if target.product is not None:
            encoded[PRODUCT_FIELD] = target.product
        return encoded
