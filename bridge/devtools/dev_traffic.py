"""The demo's traffic: sales in the shops and restocks, and how long each took to reach every shop.

Everything here flows through the product the way it does in production:

* a **sale** is ``POST /_sim/sale`` — the simulated platform lowers its stock and sends its own
  signed webhook (``variants/update`` / ``variant.update``) to the ingress, exactly as a real
  shop does after a checkout; the inventory-sync consumer takes it from Kafka and the relay writes
  the new pool to the other shops;
* a **restock** is a recount, the same code path as ``commerce-bridge sync-groups set GROUP QTY``:
  the pool and a write to every member in one outbox transaction.

"Reached every shop" is measured at the simulator: from the sale call (or the recount commit) to
the first moment every member of the group shows the new pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.devtools.dev_config import GROUPS, START_POOL, DemoGroup, DemoMember, group
from bridge.outbox.store import OutboxStore
from consumers.inventory_sync import transaction
from consumers.inventory_sync.directory import Directory
from consumers.inventory_sync.pool import recount
from consumers.inventory_sync.view import group_view

SPREAD_TIMEOUT = 10.0  # give up measuring a change after this long
POLL = 0.02  # how often the simulator is read while a change spreads
LOW = 6  # a group at or below this many pieces gets restocked (below START_POOL: now and then)

Stock = Mapping[str, Any]  # GET /_sim/stock


@dataclass(slots=True)
class Change:
    """One sale or restock and how it spread."""

    kind: str  # "sale" | "restock" | "outside" (seen at the simulator, made by someone else)
    group: str
    shop: str | None  # the shop of a sale
    delta: int
    pool: int  # what every shop should show afterwards
    started: float  # time.monotonic()
    spread: float | None = None  # seconds until every shop showed ``pool``
    gave_up: bool = False

    def words(self) -> str:
        """``sale of 2 at cb-tainan → every shop at 37 in 0.42 s``."""
        if self.kind == "sale":
            what = f"sale of {-self.delta} at {self.shop}"
        elif self.kind == "outside":
            sort = "sale" if self.delta < 0 else "rise"
            what = f"{sort} of {abs(self.delta)} at {self.shop}, not by the demo (yours?)"
        else:
            what = f"restock of {self.delta} (recount to {self.pool})"
        if self.spread is not None:
            since = " after it was seen" if self.kind == "outside" else ""
            return f"{what} → every shop at {self.pool} in {self.spread:.2f} s{since}"
        if self.gave_up:
            return f"{what} → not every shop at {self.pool} after {SPREAD_TIMEOUT:.0f} s"
        return f"{what} → spreading to every shop…"


@dataclass
class Journal:
    """The latest changes, newest last; ``changed`` is set on every update."""

    changes: deque[Change] = field(default_factory=lambda: deque(maxlen=8))
    sale_spreads: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, change: Change) -> None:
        self.changes.append(change)
        self.changed.set()

    def last(self, group_id: str) -> Change | None:
        return next((c for c in reversed(self.changes) if c.group == group_id), None)

    def spread(self, change: Change, seconds: float | None) -> None:
        """``change`` reached every shop after ``seconds`` (None: it did not in time)."""
        change.spread = seconds
        change.gave_up = seconds is None
        if seconds is not None and change.kind == "sale":
            self.sale_spreads.append(seconds)
        self.changed.set()


def level(stock: Stock, member: DemoMember) -> int | None:
    found = stock.get(member.shop, {}).get("variants", {}).get(member.variant)
    return found if isinstance(found, int) else None


def levels(stock: Stock, g: DemoGroup) -> list[int | None]:
    return [level(stock, m) for m in g.members]


class Simulator:
    """The simulator's control API (``/_sim``), as the demo uses it."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http = http
        self.url = url

    async def stock(self) -> Stock:
        response = await self.http.get(f"{self.url}/_sim/stock")
        response.raise_for_status()
        stock: Stock = response.json()
        return stock

    async def sale(self, member: DemoMember, quantity: int) -> int | None:
        """Sell ``quantity`` at ``member``'s shop; its level afterwards (None: not enough stock)."""
        body = {"shop": member.shop, "variant": member.variant, "quantity": quantity}
        response = await self.http.post(f"{self.url}/_sim/sale", json=body)
        if response.status_code == 409:
            return None
        response.raise_for_status()
        new: int = response.json()["new"]
        return new

    async def written(self, since: int) -> tuple[set[str], int]:
        """Shops that applied a write after request ``since``, and the newest request's seq."""
        response = await self.http.get(f"{self.url}/_sim/requests", params={"since": since})
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        shops = {e["shop"] for e in entries if e.get("applied")}
        return shops, max((int(e["seq"]) for e in entries), default=since)

    async def all_at(self, g: DemoGroup, pool: int, timeout: float = SPREAD_TIMEOUT) -> bool:
        """Wait until every member of ``g`` shows ``pool`` (False: not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(v == pool for v in levels(await self.stock(), g)):
                return True
            await asyncio.sleep(POLL)
        return False


async def set_pool(store: OutboxStore, directory: Directory, group_id: str, quantity: int) -> int:
    """``sync-groups set``: the pool becomes ``quantity``, a write to every member; the old pool."""
    now = time.time()
    async with store.transaction() as tx:
        state = await transaction.load(tx, directory, group_id)
        before = state.pool
        state, _ = recount(state, quantity, now)
        state, _queued = await transaction.queue_writes(tx, directory, state, now)
        await transaction.save(tx, state)
    return quantity if before is None else before


async def bridge_views(store: OutboxStore, directory: Directory) -> dict[str, dict[str, Any]]:
    """What ``sync-groups show --json`` prints, per group id."""
    async with store.transaction() as tx:
        states = await transaction.load_all(tx, directory, directory.groups)
    return {g: group_view(directory, state) for g, state in states.items()}


def settled(views: Iterable[Mapping[str, Any]]) -> bool:
    """The bridge believes every member is at its target and waits for no echo."""
    return all(
        not m["unechoed"] and m["observed"] == m["target_level"]
        for view in views
        for m in view["members"]
    )


class Traffic:
    """Sales on random members, now and then a restock, one change at a time."""

    def __init__(
        self, sim: Simulator, store: OutboxStore, directory: Directory, journal: Journal
    ) -> None:
        self.sim = sim
        self.store = store
        self.directory = directory
        self.journal = journal
        self.rng = random.Random()  # noqa: S311 -- demo traffic, not security
        self.lock = asyncio.Lock()  # one change spreading at a time (the watcher takes it too)
        self.even: dict[str, int] = {}  # group id -> the level all its members last showed

    async def run(self, stop: asyncio.Event) -> None:
        """A change every 1 to 2 s until ``stop``."""
        while not stop.is_set():
            await self.step()
            pause = self.rng.uniform(1.0, 2.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def step(self) -> Change | None:
        async with self.lock:
            change = await self._step()
            if change is not None:
                self.even[change.group] = change.pool  # the demo's own change is not "outside"
            return change

    async def _step(self) -> Change | None:
        g = self.rng.choice(GROUPS)
        member = self.rng.choice(g.members)
        now = level(await self.sim.stock(), member)
        if now is None or now <= LOW or (now < START_POOL and self.rng.random() < 0.1):
            return await self.restock(g.id, (now or 0) + self.rng.randint(10, 25))
        return await self.sale(member, g.id, self.rng.randint(1, 2))

    async def sale(self, member: DemoMember, group_id: str, quantity: int) -> Change | None:
        started = time.monotonic()
        new = await self.sim.sale(member, quantity)
        if new is None:
            return None
        change = Change("sale", group_id, member.shop, -quantity, new, started)
        return await spread(self.sim, self.journal, change)

    async def restock(self, group_id: str, pool: int) -> Change:
        started = time.monotonic()
        before = await set_pool(self.store, self.directory, group_id, pool)
        change = Change("restock", group_id, None, pool - before, pool, started)
        return await spread(self.sim, self.journal, change)

    async def watch(self, stop: asyncio.Event) -> None:
        """Time the changes someone else makes (your own ``curl``), from when they are seen.

        A member changed from outside when its level left the group's last even level and the
        simulator applied no write to its shop since the last look: the bridge's own writes,
        which may already have reached other members, are told apart by the request log.
        """
        seq = 0
        while not stop.is_set():
            async with self.lock:
                stock = await self.sim.stock()
                written, seq = await self.sim.written(seq)  # after the stock: covers its writes
                await self._look(stock, written)
                _written, seq = await self.sim.written(seq)  # the spread's own writes are seen
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)

    async def _look(self, stock: Stock, written: set[str]) -> None:
        for g in GROUPS:
            found = levels(stock, g)
            change = outside_change(g, found, self.even.get(g.id), written, time.monotonic())
            if change is not None:
                await spread(self.sim, self.journal, change)
                self.even[g.id] = change.pool
            elif len(set(found)) == 1 and found[0] is not None:
                self.even[g.id] = found[0]


def outside_change(
    g: DemoGroup, found: list[int | None], even: int | None, written: set[str], now: float
) -> Change | None:
    """The one member that left the even level ``even`` with no write to its shop, as a change.

    None when the group is even, when no level was even before, or when not exactly one member
    moved on its own (two outside sales at once are left to the bridge and not timed).
    """
    if even is None:
        return None
    moved = [
        (m, v)
        for m, v in zip(g.members, found, strict=True)
        if v is not None and v != even and m.shop not in written
    ]
    if len(moved) != 1:
        return None
    member, value = moved[0]
    return Change("outside", g.id, member.shop, value - even, value, now)


async def spread(sim: Simulator, journal: Journal, change: Change) -> Change:
    """Record ``change`` and time it until every member of its group shows its pool."""
    journal.add(change)
    reached = await sim.all_at(group(change.group), change.pool)
    journal.spread(change, time.monotonic() - change.started if reached else None)
    return change
