"""``commerce-bridge consume inventory-sync``: one stock per sync group, kept in every member.

Group ``inventory-sync`` reads ``commerce.variants`` (observed levels) and ``commerce.orders``
(orders as the source). Per partition batch, inside the runtime's outbox transaction: skip what
was applied already (the partition's offset is stored with the state), lock the touched groups in
sorted order, apply the core to every input, plan each touched group's writes once, queue them as
``set_stock`` rows, save the states. Oversold alerts are returned to be published on
``commerce.deliveries`` after the commit. A background task reconciles (``reconcile.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx
from prometheus_client import CollectorRegistry

from bridge.errors import PlatformError
from bridge.kafka.records import Record
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.outbox.store import OutboxTx
from bridge.platforms import client_for
from consumers.app import AppContext, AppSpec, Outgoing
from consumers.inventory_sync import api, transaction
from consumers.inventory_sync.directory import Directory
from consumers.inventory_sync.inputs import Input, Level, inputs_of
from consumers.inventory_sync.metrics import SyncMetrics
from consumers.inventory_sync.orders import OrderLine, apply_order
from consumers.inventory_sync.outcome import Outcome
from consumers.inventory_sync.pool import observe
from consumers.inventory_sync.reconcile import Reconciler
from consumers.inventory_sync.report import Reporter
from consumers.inventory_sync.state import GroupState

NAME = "inventory-sync"
GROUP = "inventory-sync"
log = get_logger(__name__)


class InventorySyncApp:
    """The inventory-sync consumer app (a ``consumers.app.ConsumerApp``)."""

    name = NAME

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
        group_id: str = GROUP,
    ) -> None:
        self.group_id = group_id
        # The consume command serves this registry on /metrics next to the runtime's metrics.
        self.metrics_registry = registry or CollectorRegistry()
        self.metrics = SyncMetrics.create(self.metrics_registry)
        self.clock = clock
        self._http = http
        self._own_http = http is None
        self._reconciler: Reconciler | None = None
        self._ctx: AppContext | None = None
        self._directory: Directory | None = None
        self._reporter: Reporter | None = None

    def topics(self, topics: Topics) -> Sequence[str]:
        return [topics.variants, topics.orders]

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            raise RuntimeError("InventorySyncApp.start() was not called")
        return self._ctx

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            raise RuntimeError("InventorySyncApp.start() was not called")
        return self._directory

    @property
    def reporter(self) -> Reporter:
        if self._reporter is None:
            raise RuntimeError("InventorySyncApp.start() was not called")
        return self._reporter

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.ctx.config.relay.request_timeout)
        return self._http

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._reporter = Reporter(self.metrics, ctx.topics.deliveries)
        self._directory = await self._resolve_groups(Directory.from_config(ctx.config))
        groups = len(self._directory.groups)
        interval = ctx.config.inventory_sync.reconcile_interval
        log.info("inventory_sync_started", groups=groups, reconcile_interval=interval)
        if interval > 0 and groups:
            self._reconciler = Reconciler(
                ctx, self._directory, self.reporter, self.client, interval, self.clock
            )
            self._reconciler.start()

    async def stop(self) -> None:
        if self._reconciler is not None:
            await self._reconciler.stop()
            self._reconciler = None
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def handle(self, tx: OutboxTx, records: Sequence[Record]) -> Sequence[Outgoing]:
        directory = self.directory
        mapped = [(r, inputs_of(r, self.ctx.topics, directory)) for r in records]
        mapped = [(r, inputs) for r, inputs in mapped if inputs]
        if not mapped:
            return []  # nothing synced in this batch: no state read, no write
        offset_key = f"{records[0].topic}:{records[0].partition}"
        applied = await tx.get_state(transaction.OFFSETS, offset_key)
        if isinstance(applied, int):
            mapped = [(r, inputs) for r, inputs in mapped if r.offset > applied]
        if not mapped:
            log.info("sync_batch_already_applied", partition=offset_key, applied=applied)
            return []
        now = self.clock()
        groups = {i.member.group for _, inputs in mapped for i in inputs}
        states = await transaction.load_all(tx, directory, groups)
        lines: dict[str, OrderLine] = {}
        alerts: list[Outgoing] = []
        for record, inputs in mapped:
            for item in inputs:
                group = item.member.group
                states[group], outcome = await self._apply(tx, states[group], item, lines, now)
                alert = self.reporter.outcome(group, outcome, now, record.position)
                if alert is not None:
                    alerts.append(alert)
        for group in sorted(states):
            state, queued = await transaction.queue_writes(tx, directory, states[group], now)
            await transaction.save(tx, state)
            self.reporter.queued(queued)
        for key, line in sorted(lines.items()):
            await tx.put_state(transaction.ORDERS, key, line.to_json())
        await tx.put_state(transaction.OFFSETS, offset_key, records[-1].offset)
        return alerts

    async def _apply(
        self,
        tx: OutboxTx,
        state: GroupState,
        item: Input,
        lines: dict[str, OrderLine],
        now: float,
    ) -> tuple[GroupState, Outcome]:
        timeout = self.ctx.config.inventory_sync.echo_timeout
        key = item.member.key
        if isinstance(item, Level):
            queued = [p.outbox_id for p in state.member(key).pending if p.outbox_id is not None]
            sent = await tx.first_sent(queued) if queued else {}
            return observe(
                state, key, item.level, item.previous, now,
                echo_timeout=timeout, sent=sent, seen_at=item.seen_at,
            )  # fmt: skip
        line = lines.get(item.line_key)
        if line is None:
            stored = await tx.get_state(transaction.ORDERS, item.line_key)
            line = None if stored is None else OrderLine.from_json(stored)
        state, new_line, outcome = apply_order(
            state, line, key, item.action, item.quantity, now, echo_timeout=timeout
        )
        lines[item.line_key] = new_line
        return state, outcome

    def client(self, shop: str) -> object:
        """The API client of ``shop`` (on the app's HTTP client)."""
        return client_for(self.ctx.config.shops[shop], self.http)

    async def _resolve_groups(self, directory: Directory) -> Directory:
        """Ask the platform which variants are in each configured platform-group member."""
        found: dict[tuple[str, str], list[str]] = {}
        for m in directory.groups_without_variants():
            group_id = m.platform_group or ""
            try:
                variants = await api.group_variants(self.client(m.shop), m.shop, group_id)
            except PlatformError as exc:
                log.warning(
                    "sync_group_variants_unknown",
                    group=m.group,
                    shop=m.shop,
                    platform_group=group_id,
                    error=str(exc),
                    hint="set 'variants' on the member; until then only reconcile sees its level",
                )
                continue
            found[(m.group, m.key)] = variants
            log.info("sync_group_variants", group=m.group, shop=m.shop, variants=variants)
        return directory.with_variants(found) if found else directory


SPEC = AppSpec(
    NAME,
    "commerce.variants + commerce.orders → one stock per sync group (group inventory-sync)",
    InventorySyncApp,
)
