"""Reconcile: read every member's real level through its platform's API, with spare capacity only.

Webhooks get lost. Every ``[inventory_sync] reconcile_interval`` seconds a background task walks
the members and, for each, reads the level only when the shop has no due outbox row and its shared
token bucket has a slot free *now* (``reserve(..., horizon=now)``): a read never delays a write.
The level is applied with the core's ``reconcile`` in one outbox transaction, and only if the
member's state did not change while the request was out (else the read may predate a webhook just
applied, and counting it would count that change twice; the next pass reads it again). A
difference with no write in flight is an external change: logged as ``sync_drift``, counted in
``bridge_inventory_drift_total{group}``, and the pool moves and writes are planned as for a webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from bridge.errors import PlatformError, PublishUnavailable
from bridge.log import get_logger
from consumers.app import AppContext, Outgoing
from consumers.inventory_sync import api, transaction
from consumers.inventory_sync.directory import Directory, Member
from consumers.inventory_sync.pool import reconcile
from consumers.inventory_sync.report import Reporter
from consumers.inventory_sync.state import MemberState

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one reconcile pass did: members read, skipped for lack of spare capacity, failed."""

    read: int = 0
    skipped: int = 0
    failed: int = 0
    raced: int = 0


class Reconciler:
    """The background reconcile task of one inventory-sync process."""

    def __init__(
        self,
        ctx: AppContext,
        directory: Directory,
        reporter: Reporter,
        client_of: Callable[[str], object],
        interval: float,
        clock: Callable[[], float],
        patience: float = 2.0,
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.reporter = reporter
        self.client_of = client_of
        self.interval = interval
        self.clock = clock
        self.patience = patience  # seconds a member waits for a free token before it is skipped
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inventory-sync-reconcile")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()  # a pass may be waiting on an HTTP request
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)
            if self._stop.is_set():
                return
            try:
                result = await self.run_pass()
            except Exception as exc:  # the next pass tries again; the consumer keeps running
                log.exception("reconcile_failed", error=str(exc))
                continue
            log.info("reconcile_pass", **vars_of(result))

    async def run_pass(self) -> PassResult:
        """Read and apply every member once (skipping those without spare capacity)."""
        counts = {"applied": 0, "raced": 0, "failed": 0, "skipped": 0}
        for member in self.directory.members():
            if self._stop.is_set():
                break
            outcome = await self.run_member(member)
            self.reporter.metrics.reconcile_reads.labels(member.shop, outcome).inc()
            counts[outcome] += 1
        read = counts["applied"] + counts["raced"]
        return PassResult(read, counts["skipped"], counts["failed"], counts["raced"])

    async def run_member(self, member: Member) -> str:
        """``skipped`` without spare capacity, else what :meth:`reconcile_member` did."""
        if not await self._wait_for_spare(member.shop):
            return "skipped"
        return await self.reconcile_member(member)

    async def _wait_for_spare(self, shop: str) -> bool:
        """A token taken from spare capacity, trying again every 1/rate for ``patience`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience
        step = 1.0 / self.ctx.config.shops[shop].rate_limit
        while not await self._spare_slot(shop):
            if loop.time() + step > deadline or self._stop.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), step)
        return True

    async def _spare_slot(self, shop: str) -> bool:
        """Take a token from the shop's shared bucket only if no write waits and one is free now."""
        store, now = self.ctx.store, self.clock()
        if shop in await store.due_shops(now):
            return False
        cfg = self.ctx.config.shops[shop]
        return bool(await store.reserve(shop, cfg.rate_limit, cfg.burst, 1, now, horizon=now))

    async def reconcile_member(self, member: Member) -> str:
        """Read one member's level and apply it: ``applied``, ``raced`` or ``failed``."""
        before = await self._member_state(member)
        try:
            real = await api.read_level(self.client_of(member.shop), member.shop, member.target)
        except PlatformError as exc:
            log.warning(
                "reconcile_read_failed", group=member.group, member=member.key, error=str(exc)
            )
            return "failed"
        alert: Outgoing | None = None
        async with self.ctx.store.transaction() as tx:
            now = self.clock()
            state = await transaction.load(tx, self.directory, member.group)
            if state.members.get(member.key) != before:
                log.info("reconcile_raced", group=member.group, member=member.key)
                return "raced"
            state, outcome = reconcile(
                state, member.key, real, now,
                echo_timeout=self.ctx.config.inventory_sync.echo_timeout,
            )  # fmt: skip
            alert = self.reporter.outcome(member.group, outcome, now, None)
            state, queued = await transaction.queue_writes(tx, self.directory, state, now)
            await transaction.save(tx, state)
        self.reporter.queued(queued)
        if alert is not None:
            await self._publish(alert)
        return "applied"

    async def _member_state(self, member: Member) -> MemberState | None:
        async with self.ctx.store.transaction() as tx:
            state = await transaction.load(tx, self.directory, member.group)
        return state.members.get(member.key)

    async def _publish(self, alert: Outgoing) -> None:
        try:
            await self.ctx.publisher.publish(
                alert.topic, alert.key, alert.value, list(alert.headers), timeout=10.0
            )
        except PublishUnavailable as exc:  # the metric and the log line stand
            log.warning("alert_not_published", error=str(exc), alert=orjson.loads(alert.value))


def vars_of(result: PassResult) -> dict[str, int]:
    return {
        "read": result.read,
        "skipped": result.skipped,
        "failed": result.failed,
        "raced": result.raced,
    }
