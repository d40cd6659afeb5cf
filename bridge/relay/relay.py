"""The relay: sends due outbox rows to the platforms, per shop, at the shop's rate limit.

One task per shop with due rows (a *lane*), each holding the shop's lane lease in the database, so
one slow shop never holds up another and several relay replicas spread the shops between them. A
lane claims a batch (about ``batch_seconds`` of the shop's rate), draws send times for it from the
shop's token bucket in the database (shared by every replica: the limit is global), and starts each
request at its time; requests of one batch may overlap (one per target at most). Outcomes go to the
database first and then, off the send path, to ``commerce.deliveries`` (and ``commerce.dlq``).
Here is the loop (polling, taking lanes, stopping); one shop's sending is
:mod:`bridge.relay.shop_lane`. Invariants and the attempts semantics: docs/relay.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from bridge.config import Config, ShopConfig
from bridge.kafka.publisher import Publisher
from bridge.kafka.topics import Topics
from bridge.log import get_logger
from bridge.outbox.store import OutboxStore
from bridge.platforms.base import PlatformClient
from bridge.relay.deliveries import Reporter
from bridge.relay.lanes import Batch, RelayOptions
from bridge.relay.marks import LaneReleases
from bridge.relay.metrics import RelayMetrics
from bridge.relay.outcomes import Outcomes
from bridge.relay.pacing import SendWindow
from bridge.relay.requests import Requests
from bridge.relay.shop_lane import LaneRunner
from bridge.relay.slots import lease_for

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
        self.lane_runner = self._lane_runner()

    def _lane_runner(self) -> LaneRunner:
        """One shop's sending, sharing the relay's per-shop state and reading its ``_stopping``."""
        return LaneRunner(
            self.store,
            self.options,
            self.settings,
            self.clock,
            owner=self.owner,
            lease=self.lease,
            deadline=self.deadline,
            outcomes=self.outcomes,
            requests=self.requests,
            releases=self.releases,
            windows=self._windows,
            cooldown=self._cooldown,
            batches=self._batches,
            stopping=lambda: self._stopping,
        )

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
        size = self.options.claim_chunk
        chunks = [known[start : start + size] for start in range(0, len(known), size)]
        # Replicas polling the same due shops start on different chunks: in the same order,
        # each would wait for the other's uncommitted claim of the same lanes, chunk after chunk.
        self.rng.shuffle(chunks)
        for chunk in chunks:
            await self._start_lanes(chunk, now)
        for shop in [s for s, t in self._cooldown.items() if t <= now]:
            del self._cooldown[shop]  # in place: the lane runner shares this dict
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

    # -- the lanes ------------------------------------------------------------------------------

    def batch_size(self, spec: ShopConfig) -> int:
        """Rows a lane of ``spec``'s shop claims at a time (:meth:`LaneRunner.batch_size`)."""
        return self.lane_runner.batch_size(spec)

    async def _start_lanes(self, shops: list[str], now: float) -> None:
        """Take the lanes of ``shops`` with their first batches in one transaction; run them."""
        wanted = [self.lane_runner.wanted(self.config.shops[shop], now) for shop in shops]
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
            lane = self.lane_runner.run(shop, spec, client, claimed, now)
            task = asyncio.create_task(lane, name=f"relay-lane-{shop}")
            self._lanes[shop] = task
            task.add_done_callback(functools.partial(self._lane_done, shop))
