"""One shop's sending: a lane's batches, each row at its send slot, until the shop has no more due.

A :class:`LaneRunner` (one per relay, built by :class:`~bridge.relay.relay.Relay`) runs the lanes
the relay has taken. A lane sends its claimed batch, then claims the next (renewing the lane in
the same transaction) while full batches keep coming; it hands its shop over after
``lane_turn_seconds``, pauses it after a long 429 deferral or when no slot is left within the
lease, and gives the lane back at the end, telling the next holder how long its last requests
still count. Rows not sent (the relay stopping, a deferral, the lease nearly over) go back to the
outbox unsent. Invariants: docs/relay.md.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Literal

from bridge.config import RelayConfig, ShopConfig
from bridge.log import get_logger
from bridge.outbox.store import ClaimedLane, LaneClaim, OutboxRow, OutboxStore
from bridge.platforms.base import PlatformClient
from bridge.relay.lanes import Batch, Lane, RelayOptions
from bridge.relay.marks import LaneReleases
from bridge.relay.outcomes import Outcomes
from bridge.relay.pacing import Clock, SendWindow, sleep_until
from bridge.relay.requests import Requests
from bridge.relay.slots import Slots, horizon

log = get_logger(__name__)


class LaneRunner:
    """Sends for the relay's lanes (one :meth:`run` task per shop), sharing its per-shop state.

    ``windows``, ``cooldown`` and ``batches`` are the relay's own (it polls, prunes and
    interrupts them); ``stopping`` tells whether the relay is stopping.
    """

    def __init__(
        self,
        store: OutboxStore,
        options: RelayOptions,
        settings: RelayConfig,
        clock: Clock,
        *,
        owner: str,
        lease: float,
        deadline: float,
        outcomes: Outcomes,
        requests: Requests,
        releases: LaneReleases,
        windows: dict[str, SendWindow],
        cooldown: dict[str, float],
        batches: set[Batch],
        stopping: Callable[[], bool],
    ) -> None:
        self.store = store
        self.options = options
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.lease = lease
        self.deadline = deadline
        self.outcomes = outcomes
        self.requests = requests
        self.releases = releases
        self._windows = windows
        self._cooldown = cooldown
        self._batches = batches
        self.stopping = stopping

    def batch_size(self, spec: ShopConfig) -> int:
        per_batch = math.ceil(spec.rate_limit * self.options.batch_seconds) + spec.burst - 1
        return max(1, min(self.options.max_batch, per_batch))

    async def run(
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
                if len(batch.rows) < limit or self.stopping():
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

    def wanted(self, spec: ShopConfig, now: float) -> LaneClaim:
        """A claim of one batch, its slots no later than the batch's horizon."""
        horizon = now + self.lease - self.deadline - self.options.lease_margin
        return LaneClaim(spec.id, self.batch_size(spec), self._rate(spec), spec.burst, horizon)

    async def _claim(self, shop: str, spec: ShopConfig, now: float) -> ClaimedLane | None:
        """Renew the lane, claim a batch and draw its send slots: one transaction."""
        w = self.wanted(spec, now)
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
        if self.stopping():
            batch.interrupt.set()
        sends: list[asyncio.Task[None]] = []
        pending = rows
        try:
            while pending:
                if self.stopping():
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
