"""Config, records and an app harness for the inventory-sync app tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from prometheus_client import CollectorRegistry

from bridge.config import Config, parse_config
from bridge.kafka.records import CloudEvent, Record
from bridge.kafka.topics import Topics
from bridge.outbox.store import OutboxRow, OutboxStore, OutboxTx, Status
from consumers.app import AppContext, Outgoing
from consumers.inventory_sync import transaction
from consumers.inventory_sync.app import InventorySyncApp
from consumers.inventory_sync.state import GroupState
from tests.support import RecordingPublisher

T0 = 1_760_000_000.0
CB = "cb-taipei/variant:5001"
BENTO = "bento-bkk/variant:753758"
ORDERS = "std-orders/variant:o-1"
CB_GROUP = "cb-taipei/group:77"
MUG = "std-shop/variant:m-1"


def config_text(
    dsn: str = "sqlite:///unused.db",
    prefix: str = "commerce",
    bootstrap: str = "127.0.0.1:9",
    extra: str = "",
) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"

[outbox]
dsn = "{dsn}"

[privacy]
mode = "passthrough"

[inventory_sync]
reconcile_interval = 0

[[shops]]
id = "cb-taipei"
platform = "cyberbiz"
api_base = "http://127.0.0.1:9/cb"
api_token = "tok"
webhook_secrets = ["s"]

[[shops]]
id = "bento-bkk"
platform = "bentoweb"
webhook_secrets = ["s"]

[[shops]]
id = "std-shop"
platform = "standard"
webhook_secrets = ["s"]

[[shops]]
id = "std-orders"
platform = "standard"
webhook_secrets = ["s"]
stock_source = "orders"

[[sync_groups]]
id = "tee"
members = [
  {{ shop = "cb-taipei", product = "1001", variant = "5001" }},
  {{ shop = "bento-bkk", variant = "753758", buffer = 2 }},
  {{ shop = "std-orders", variant = "o-1" }},
]

[[sync_groups]]
id = "mug"
members = [
  {{ shop = "cb-taipei", cyberbiz_group = "77", variants = ["6001", "6002"] }},
  {{ shop = "std-shop", variant = "m-1" }},
]
{extra}
"""


def make_config(
    dsn: str = "sqlite:///unused.db", prefix: str = "commerce", bootstrap: str = "127.0.0.1:9"
) -> Config:
    return parse_config(config_text(dsn, prefix, bootstrap), {})


@dataclass
class Feed:
    """Builds records of one partition with increasing offsets."""

    topics: Topics = field(default_factory=Topics)
    partition: int = 0
    offset: int = 0

    def _record(self, topic: str, key: str, value: dict[str, Any], ce_type: str) -> Record:
        record = Record(
            topic=topic,
            partition=self.partition,
            offset=self.offset,
            key=key,
            ce=CloudEvent(id=f"e{self.offset}", source=None, type=ce_type, time=None),
            headers={},
            value=value,
            raw=orjson.dumps(value),
            timestamp_ms=0,
        )
        self.offset += 1
        return record

    def level(
        self, shop: str, variant: str, quantity: int | None, previous: int | None = None
    ) -> Record:
        kind = "commerce.variant.updated"
        value: dict[str, Any] = {
            "shop": shop,
            "type": kind,
            "variant_id": variant,
            "product_id": None,
            "inventory_quantity": quantity,
            "previous_quantity": previous,
        }
        return self._record(self.topics.variants, f"{shop}:{variant}", value, kind)

    def order(
        self, shop: str, order_id: str, action: str, lines: Sequence[tuple[str, int]]
    ) -> Record:
        kind = f"commerce.order.{action}"
        value: dict[str, Any] = {
            "shop": shop,
            "type": kind,
            "order_id": order_id,
            "line_items": [{"variant_id": v, "quantity": q} for v, q in lines],
        }
        return self._record(self.topics.orders, f"{shop}:{order_id}", value, kind)


class SentTx:
    """The real transaction, except that every queued write counts as sent long ago: the tests
    of echo rules stand for a relay that delivered each write before the platform answered."""

    def __init__(self, tx: OutboxTx) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    async def first_sent(self, ids: Iterable[int]) -> dict[int, float | None]:
        return dict.fromkeys(ids, 0.0)


class Harness:
    """The app started on a real outbox store, with a recording publisher and a settable clock.

    ``relay_done=True`` (the default) makes every queued write count as sent before the next
    batch; False leaves the outbox's own answer (nothing is sent in these tests).
    """

    def __init__(self, store: OutboxStore, config: Config | None = None) -> None:
        self.store = store
        self.config = config or make_config()
        self.now = T0
        self.registry = CollectorRegistry()
        self.publisher = RecordingPublisher()
        self.app = InventorySyncApp(registry=self.registry, clock=lambda: self.now)
        self.topics = Topics(self.config.kafka.topic_prefix)

    async def start(self) -> Harness:
        ctx = AppContext(self.config, self.topics, self.store, self.publisher)
        await self.app.start(ctx)
        return self

    async def handle(
        self, records: Sequence[Record], *, relay_done: bool = True
    ) -> Sequence[Outgoing]:
        async with self.store.transaction() as tx:
            used = cast(OutboxTx, SentTx(tx)) if relay_done else tx
            return await self.app.handle(used, records)

    async def state(self, group: str) -> GroupState:
        async with self.store.transaction() as tx:
            return await transaction.load(tx, self.app.directory, group)

    async def rows(self, status: Status | None = Status.PENDING) -> list[OutboxRow]:
        """Rows oldest first."""
        return sorted(await self.store.list_rows(status=status, limit=1000), key=lambda r: r.id)

    async def levels(self) -> dict[tuple[str, str], int]:
        """The quantity of the newest pending row per (shop, target)."""
        return {(r.shop, r.target): int(r.payload["quantity"]) for r in await self.rows()}

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value
