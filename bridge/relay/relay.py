"""The relay: sends due outbox rows to the platforms, per shop, at the shop's rate limit.

One task per shop with due rows (a *lane*), each holding the shop's lane lease in the database, so
one slow shop never holds up another and several relay replicas spread the shops between them. A
lane claims a batch (about ``batch_seconds`` of the shop's rate), draws send times for it from the
shop's token bucket in the database (shared by every replica: the limit is global), and starts each
request at its time; requests of one batch may overlap (one per target at most). Outcomes go to the
database first and then, off the send path, to ``commerce.deliveries`` (and ``commerce.dlq``).
Invariants and the attempts semantics: docs/relay.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Literal

from prometheus_client import CollectorRegistry

from bridge.config import Config, ShopConfig
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.outbox.store import ClaimedLane, LaneClaim, OutboxRow, OutboxStore
from bridge.platforms.base import PlatformClient
from bridge.relay.deliveries import Reporter
from bridge.relay.lanes import Batch, Lane, RelayOptions
from bridge.relay.marks import LaneReleases
from bridge.relay.metrics import RelayMetrics
from bridge.relay.outcomes import Outcomes
from bridge.relay.pacing import SendWindow, sleep_until
from bridge.relay.requests import Requests
from bridge.relay.slots import Slots, horizon, lease_for

log = get_logger(__name__)

Clock = Callable[[], float]


class Relay:
    """Delivers outbox rows through platform clients. ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        store: OutboxStore,
        clients: Mapping[str, PlatformClient],
        publisher: Publisher,
        *,
        owner: str,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        options: RelayOptions | None = None,
    ) -> None:
        self.config = config
        self.settings = config.relay
        self.store = store
        self.clients = clients
        self.owner = owner
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 -- jitter only
        self.options = options or RelayOptions()
        registry = registry if registry is not None else CollectorRegistry()
        self.metrics = RelayMetrics.create(registry)
        self.topics = Topics.from_config(config.kafka)
        self.reporter = Reporter(publisher, self.metrics, timeout=self.options.publish_timeout)
        self.outcomes = Outcomes(
            store,
            owner,
            self.settings,
            clock=clock,
            rng=self.rng,
            metrics=self.metrics,
            reporter=self.reporter,
            topics=self.topics,
            min_defer=self.options.min_defer,
        )
        # One deadline per request (connect to answer); a row's lease must outlast it.
        self.deadline = self.settings.request_timeout
        self.requests = Requests(
            self.outcomes, clock, deadline=self.deadline, margin=self.options.lease_margin
        )
        self.lease = lease_for(self.settings, self.options.batch_seconds, self.options.lease_margin)
        if self.lease > self.settings.lease_seconds:
            log.warning(
                "relay_lease_too_short",
                lease_seconds=self.settings.lease_seconds,
                using=self.lease,
                hint="lease_seconds must exceed request_timeout plus a batch; using more",
            )
        self.releases = LaneReleases(store, owner, clock)
        self.started = asyncio.Event()
        self.last_poll: float | None = None
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._cooldown: dict[str, float] = {}
        self._batches: set[Batch] = set()
        self._windows: dict[str, SendWindow] = {}
        self._signal = asyncio.Event()
        self._stopping = False
        self._unknown: set[str] = set()

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll for due shops and run their lanes; on ``stop`` drain and return."""
        self.reporter.start()
        watcher = asyncio.create_task(self._watch(stop), name="relay-stop-watcher")
        depth = asyncio.create_task(self._depth_loop(), name="relay-depth")
        log.info("relay_started", owner=self.owner, shops=len(self.clients))
        self.started.set()
        try:
            loop = asyncio.get_running_loop()
            while not self._stopping:
                polled = loop.time()
                await self._poll()
                self._signal.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_interval):
                        await self._signal.wait()
                # Lanes ending by the hundred each wake the loop: one poll per gap serves them.
                gap = polled + self.options.poll_gap - loop.time()
                if gap > 0 and not self._stopping:
                    await asyncio.sleep(gap)
        finally:
            self._halt_all()
            await self._drain()
            await self.releases.close()
            await self.outcomes.close()
            for task in (watcher, depth):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.reporter.close(self.options.flush_timeout)
            log.info("relay_stopped", owner=self.owner)

    def wake(self) -> None:
        """Poll now instead of at the next ``poll_interval`` (work was just added)."""
        self._signal.set()

    @property
    def ready(self) -> bool:
        """Running, and the last poll of the database succeeded recently."""
        if self.last_poll is None or self._stopping:
            return False
        return self.clock() - self.last_poll < max(10.0, 20 * self.settings.poll_interval)

    @property
    def active_lanes(self) -> int:
        return len(self._lanes)

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        log.info("relay_stopping", lanes=len(self._lanes))
        self._halt_all()

    def _halt_all(self) -> None:
        self._stopping = True
        self._signal.set()
        for batch in self._batches:
            batch.interrupt.set()

    async def _drain(self) -> None:
        """Let the lanes put unsent rows back and finish requests on the wire, then cancel."""
        tasks = list(self._lanes.values())
        if not tasks:
            return
        grace = self.settings.request_timeout + 5.0
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("relay_lanes_cancelled", count=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _poll(self) -> None:
        now = self.clock()
        try:
            shops = await self.store.due_shops(now)
        except Exception:
            log.exception("relay_poll_failed")
            return
        self.last_poll = now
        free = self.options.max_lanes - len(self._lanes)
        candidates = [s for s in shops if s not in self._lanes and self._cooldown.get(s, 0) <= now]
        if len(candidates) > free:
            self.rng.shuffle(candidates)  # no shop starves behind the alphabet
        known = []
        for shop in candidates[: max(0, free)]:
            if shop in self.config.shops and shop in self.clients:
                known.append(shop)
            elif shop not in self._unknown:
                self._unknown.add(shop)
                log.warning("relay_unknown_shop", shop=shop, hint="rows stay pending")
        for start in range(0, len(known), self.options.claim_chunk):
            await self._start_lanes(known[start : start + self.options.claim_chunk], now)
        self._cooldown = {s: t for s, t in self._cooldown.items() if t > now}
        for shop in [s for s, w in self._windows.items() if s not in self._lanes and w.idle]:
            del self._windows[shop]
        self.metrics.active_lanes.set(len(self._lanes))

    def _lane_done(self, shop: str, task: asyncio.Task[None]) -> None:
        self._lanes.pop(shop, None)
        self.metrics.active_lanes.set(len(self._lanes))
        if not task.cancelled() and task.exception() is not None:
            log.error("relay_lane_crashed", shop=shop, error=repr(task.exception()))
        self._signal.set()  # its shop may have more work due

    async def _depth_loop(self) -> None:
        while True:
            try:
                self.metrics.set_depth(await self.store.depth())
            except Exception:
                log.exception("relay_depth_failed")
            await asyncio.sleep(self.options.depth_interval)

    # -- one shop -------------------------------------------------------------------------------

    def batch_size(self, spec: ShopConfig) -> int:
        per_batch = math.ceil(spec.rate_limit * self.options.batch_seconds) + spec.burst - 1
        return max(1, min(self.options.max_batch, per_batch))

    async def _start_lanes(self, shops: list[str], now: float) -> None:
        """Take the lanes of ``shops`` with their first batches in one transaction; run them."""
        wanted = [self._wanted(self.config.shops[shop], now) for shop in shops]
        try:
            taken = await self.store.claim_lanes(
                self.owner, self.lease, now, wanted, release_empty=True
            )
        except Exception:
            log.exception("relay_claim_failed", shops=len(shops))
            return
        for shop in shops:
            claimed = taken.get(shop)
            if claimed is None:
                # Another relay sends to this shop now (or nothing was due after all): look
                # again after a poll interval, not at once.
                self._cooldown[shop] = now + self.settings.poll_interval
                continue
            spec, client = self.config.shops[shop], self.clients[shop]
            lane = self._lane(shop, spec, client, claimed, now)
            task = asyncio.create_task(lane, name=f"relay-lane-{shop}")
            self._lanes[shop] = task
            task.add_done_callback(functools.partial(self._lane_done, shop))

    async def _lane(
        self,
        shop: str,
        spec: ShopConfig,
        client: PlatformClient,
        claimed: ClaimedLane,
        now: float,
    ) -> None:
        """Send the shop's batches: ``claimed`` (the lane taken with its first batch), then
        more while full batches keep coming. A relay stopping meanwhile puts them back."""
        limit = self.batch_size(spec)
        lane = Lane(shop, spec, client, started=now, renewed=now)
        batch = claimed
        try:
            while batch.rows:
                await self._send_batch(lane, batch.rows, batch.slots)
                if not lane.held:
                    break
                if lane.idle_until is not None:  # deferred, or no slot within the lease
                    self._cooldown[shop] = max(lane.idle_until, self._cooldown.get(shop, 0.0))
                    break
                if len(batch.rows) < limit or self._stopping:
                    break  # the shop had no more due (the next poll finds rows added since)
                now = self.clock()
                turn = self.options.lane_turn_seconds
                if turn and now - lane.started >= turn:
                    self._cooldown[shop] = now + 2 * self.settings.poll_interval
                    log.info("relay_lane_handover", shop=shop)
                    break
                again = await self._claim(shop, spec, now)  # renews the lane as well
                if again is None:
                    lane.held = False
                    log.warning("relay_lane_lost", shop=shop)
                    break
                batch, lane.renewed = again, now
        except Exception:
            log.exception("relay_lane_failed", shop=shop)
        finally:
            if lane.held:
                try:
                    await self._release(lane)
                except Exception:
                    log.exception("relay_lane_release_failed", shop=shop)

    def _wanted(self, spec: ShopConfig, now: float) -> LaneClaim:
        """A claim of one batch, its slots no later than the batch's horizon."""
        horizon = now + self.lease - self.deadline - self.options.lease_margin
        return LaneClaim(spec.id, self.batch_size(spec), self._rate(spec), spec.burst, horizon)

    async def _claim(self, shop: str, spec: ShopConfig, now: float) -> ClaimedLane | None:
        """Renew the lane, claim a batch and draw its send slots: one transaction."""
        w = self._wanted(spec, now)
        return await self.store.claim_lane(
            shop, self.owner, w.limit, self.lease, now, rate=w.rate, burst=w.burst,
            horizon=w.horizon,
        )  # fmt: skip

    def _rate(self, spec: ShopConfig) -> float:
        return spec.rate_limit * (1.0 - self.options.rate_headroom)

    async def _release(self, lane: Lane) -> None:
        """Give the lane up, telling the next holder how long our last requests still count."""
        window = self._windows.get(lane.shop)
        until = window.handover(lane.spec.burst) if window is not None else 0.0
        handover = until if until > self.clock() else None
        await self.releases.release(lane.shop, handover)  # with the other lanes ending now

    async def _renew(self, lane: Lane) -> bool:
        now = self.clock()
        if await self.store.acquire_lane(lane.shop, self.owner, self.lease, now):
            lane.renewed = now
            return True
        lane.held = False
        log.warning("relay_lane_lost", shop=lane.shop)
        return False

    async def _send_batch(
        self, lane: Lane, rows: list[OutboxRow], first_slots: list[float] | None = None
    ) -> None:
        """Send ``rows`` at their slots; after a 429 wait for the deferred time, then go on."""
        batch = Batch()
        self._batches.add(batch)
        if self._stopping:
            batch.interrupt.set()
        sends: list[asyncio.Task[None]] = []
        pending = rows
        try:
            while pending:
                if self._stopping:
                    await self.outcomes.put_back(pending, self.clock(), "the relay is stopping")
                    break
                until = batch.deferred_until
                if until is not None:
                    if until > self._horizon(pending[0]):  # a long Retry-After: give them back
                        await self.outcomes.put_back(
                            pending, until, "the shop is deferred after a 429"
                        )
                        lane.pause(until)  # and send nothing to this shop until then
                        break
                    batch.interrupt.clear()
                    await sleep_until(self.clock, until, batch.interrupt)
                    if batch.interrupt.is_set():
                        continue  # stopping, or a later 429 moved the deferral
                pending = await self._send_at_slots(lane, pending, batch, sends, first_slots)
                first_slots = None  # what is left after a deferral draws new slots
            if sends:
                await asyncio.gather(*sends)
            if batch.deferred_until is not None and batch.deferred_until > self.clock():
                lane.pause(batch.deferred_until)  # a 429 came back: no new claim until then
        finally:
            self._batches.discard(batch)
            for task in sends:
                if not task.done():
                    task.cancel()

    async def _send_at_slots(
        self,
        lane: Lane,
        rows: list[OutboxRow],
        batch: Batch,
        sends: list[asyncio.Task[None]],
        drawn: list[float] | None = None,
    ) -> list[OutboxRow]:
        """Start each row's request at its slot (``drawn`` with the claim, else drawn now);
        return the rows left when interrupted."""
        spec = lane.spec
        until = self._horizon(rows[0])  # claimed together: one lease for the batch
        slots = Slots(self.store, lane.shop, self._rate(spec), spec.burst, until)
        if drawn is None:
            await slots.fill(len(rows), self.clock())
        else:
            slots.extend(drawn)
        window = self._window(lane)
        for index, row in enumerate(rows):
            turn = await self._turn(lane, rows[index:], slots, batch, window)
            if turn == "interrupted":
                return rows[index:]
            if turn == "stop":
                return []
            if turn == "send":
                send = window.start()
                task = asyncio.create_task(
                    self.requests.deliver(lane.client, lane.spec.platform, row, batch.defer, send),
                    name=f"relay-{row.id}",
                )
                sends.append(task)
        return []

    async def _turn(
        self,
        lane: Lane,
        rows: list[OutboxRow],
        slots: Slots,
        batch: Batch,
        window: SendWindow,
    ) -> Literal["send", "skip", "interrupted", "stop"]:
        """Wait for ``rows[0]``'s slot (after one for a token fetch, if a token is due).

        ``stop``: the rest went back unsent (no slot left within the lease); ``skip``: the token
        fetch failed and that is the row's outcome.
        """
        row, until = rows[0], slots.until
        while True:
            slot = await slots.next(self.clock())
            if slot is None:
                await self.outcomes.put_back(rows, until, "no send slot within the lease")
                lane.pause(until)
                return "stop"
            await sleep_until(self.clock, slot, batch.interrupt)
            await window.wait_turn(batch.interrupt)  # the earlier writes have arrived
            if batch.interrupt.is_set():
                return "interrupted"
            if lane.held and self.clock() - lane.renewed >= self.lease / 3:
                await self._renew(lane)  # a lost lane: finish this batch, then stop
            if self.clock() > until:  # waiting for the window used the lease up
                await self.outcomes.put_back(rows, self.clock(), "lease nearly over")
                lane.pause(self.clock())
                return "stop"
            fetched = await self.requests.fetch_token(
                lane.client, lane.spec.platform, row, batch.defer, window
            )
            if fetched is None:
                return "send"
            if not fetched:
                return "skip"

    def _window(self, lane: Lane) -> SendWindow:
        window = self._windows.get(lane.shop)
        if window is None:
            window = self._windows[lane.shop] = SendWindow(
                lane.spec.rate_limit,
                self.clock,
                headroom=self.options.rate_headroom,
                burst=lane.spec.burst,
                pace_on=self.options.pace_on,
            )
        return window

    def _horizon(self, row: OutboxRow) -> float:
        """The latest send time for a claimed row: later, the request could outlive its lease."""
        return horizon(row, self.deadline, self.options.lease_margin)
