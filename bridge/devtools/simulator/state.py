"""The simulator's memory: stock, request log, idempotency answers, rate windows. No I/O.

Time comes from two injected clocks: ``clock`` (monotonic seconds, for rate windows and token
expiry) and ``wall`` (Unix seconds, for the request log and ``updated_at``), so the unit tests drive
both by hand.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.config import ShopConfig

Clock = Callable[[], float]
Platform = Literal["cyberbiz", "bentoweb"]
SIMULATED_PLATFORMS: tuple[Platform, ...] = ("cyberbiz", "bentoweb")
STATS_WINDOW = 1.0  # seconds: ``max_in_any_1s``


class RateWindow:
    """Sliding window: at most ``limit`` admitted requests in any ``window`` seconds.

    ``rate_limit`` 5.0 means 5 per 1.0 s; a fractional rate such as 0.5 becomes 1 per 2.0 s.
    Rejected requests do not take a slot.
    """

    __slots__ = ("_hits", "limit", "window")

    def __init__(self, rate_limit: float) -> None:
        if rate_limit <= 0:
            raise ValueError(f"rate_limit must be > 0, got {rate_limit}")
        self.limit = max(1, math.floor(rate_limit))
        self.window = self.limit / rate_limit
        self._hits: deque[float] = deque(maxlen=self.limit)

    def admit(self, now: float) -> float:
        """0.0 if admitted (and counted), else the seconds until a slot frees up."""
        hits = self._hits
        edge = now - self.window
        while hits and hits[0] <= edge:
            hits.popleft()
        if len(hits) < self.limit:
            hits.append(now)
            return 0.0
        return hits[0] + self.window - now

    def clear(self) -> None:
        self._hits.clear()


def retry_after_seconds(wait: float) -> int:
    """``Retry-After`` as integer seconds, never below 1."""
    return max(1, math.ceil(wait))


class WindowMax:
    """The largest number of events seen in any ``window``-second span, in O(1) per event."""

    __slots__ = ("_times", "max", "window")

    def __init__(self, window: float = STATS_WINDOW) -> None:
        self.window = window
        self.max = 0
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        times = self._times
        edge = now - self.window
        while times and times[0] <= edge:
            times.popleft()
        times.append(now)
        if len(times) > self.max:
            self.max = len(times)

    def clear(self) -> None:
        self._times.clear()
        self.max = 0


@dataclass(frozen=True, slots=True)
class SimShop:
    """What the simulator needs to know about one configured shop."""

    id: str
    platform: Platform
    api_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    rate_limit: float = 5.0
    max_request_bytes: int = 2 * 1024 * 1024
    sync_groups: bool = True

    @classmethod
    def from_config(cls, shop: ShopConfig, *, sync_groups: bool = True) -> SimShop:
        if shop.platform not in SIMULATED_PLATFORMS:
            raise ValueError(f"shop {shop.id!r}: platform {shop.platform!r} is not simulated")
        platform: Platform = "cyberbiz" if shop.platform == "cyberbiz" else "bentoweb"
        return cls(
            id=shop.id,
            platform=platform,
            api_token=shop.api_token,
            client_id=shop.client_id,
            client_secret=shop.client_secret,
            webhook_secret=shop.webhook_secrets[0] if shop.webhook_secrets else None,
            rate_limit=shop.rate_limit,
            max_request_bytes=shop.max_request_bytes,
            sync_groups=sync_groups and platform == "cyberbiz",
        )


@dataclass(slots=True)
class Variant:
    id: str
    product_id: str | None
    quantity: int
    updated_at: float  # wall clock
    group: str | None = None


@dataclass(slots=True)
class Group:
    id: str
    quantity: int
    updated_at: float
    members: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Change:
    """One variant whose stock a write or sale changed; ``old`` is its quantity before."""

    variant: Variant
    old: int


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The answer remembered for an ``Idempotency-Key``."""

    fingerprint: bytes
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class StockSeed:
    """``POST /_sim/stock``: absolute quantities, product ids and sync-group members of a shop."""

    shop: str
    variants: Mapping[str, int] = field(default_factory=dict)
    groups: Mapping[str, int] = field(default_factory=dict)
    products: Mapping[str, str] = field(default_factory=dict)
    group_members: Mapping[str, Sequence[str]] = field(default_factory=dict)


class ShopState:
    """Stock and counters of one shop."""

    __slots__ = (
        "applied",
        "groups",
        "limiter",
        "rejected_429",
        "replays",
        "requests",
        "seen",
        "spec",
        "variants",
        "webhooks_dropped",
    )

    def __init__(self, spec: SimShop) -> None:
        self.spec = spec
        self.variants: dict[str, Variant] = {}
        self.groups: dict[str, Group] = {}
        self.limiter = RateWindow(spec.rate_limit)
        self.seen = WindowMax()
        self.requests = 0
        self.applied = 0
        self.rejected_429 = 0
        self.replays = 0
        self.webhooks_dropped = 0  # by ``--drop-webhooks``, not by a full queue

    def receive(self, now: float) -> None:
        """Count an API request on arrival (``now`` monotonic), whatever its answer."""
        self.requests += 1
        self.seen.add(now)

    def clear(self) -> None:
        self.variants.clear()
        self.groups.clear()
        self.limiter.clear()
        self.seen.clear()
        self.requests = self.applied = self.rejected_429 = self.replays = 0
        self.webhooks_dropped = 0


# seq, t, shop, method, path, status, idempotency_key, replay, applied
LogEntry = tuple[int, float, str, str, str, int, str | None, bool, bool]
LOG_FIELDS = (
    "seq",
    "t",
    "shop",
    "method",
    "path",
    "status",
    "idempotency_key",
    "replay",
    "applied",
)


class SimState:
    """All shops' state plus the request log, idempotency answers and OAuth tokens."""

    def __init__(
        self,
        shops: Iterable[SimShop],
        *,
        log_capacity: int = 1_000_000,
        idempotency_capacity: int = 200_000,
        create_missing: bool = True,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.shops: dict[str, ShopState] = {s.id: ShopState(s) for s in shops}
        self.clock = clock
        self.wall = wall
        self.create_missing = create_missing
        self.log: deque[LogEntry] = deque(maxlen=log_capacity)
        self._seq = itertools.count(1)
        self._idempotency: OrderedDict[tuple[str, str], StoredAnswer] = OrderedDict()
        self._idempotency_capacity = idempotency_capacity
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (shop, expires at)

    # -- request log --------------------------------------------------------------------------

    def record(
        self,
        shop: str,
        method: str,
        path: str,
        status: int,
        *,
        t: float,
        key: str | None = None,
        replay: bool = False,
        applied: bool = False,
    ) -> None:
        """Append one answered request to the log; count 429s, replays and applied writes."""
        self.log.append((next(self._seq), t, shop, method, path, status, key, replay, applied))
        state = self.shops.get(shop)
        if state is not None:
            if status == 429:
                state.rejected_429 += 1
            if replay:
                state.replays += 1
            if applied:
                state.applied += 1

    def requests(
        self, shop: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Log entries with ``seq > since``, oldest first, optionally of one shop only."""
        log = self.log
        start = 0
        if log and since >= log[0][0]:
            start = min(len(log), since - log[0][0] + 1)  # seq is contiguous within the deque
        out: list[dict[str, Any]] = []
        for entry in itertools.islice(log, start, None):
            if shop is not None and entry[2] != shop:
                continue
            out.append(dict(zip(LOG_FIELDS, entry, strict=True)))
            if limit is not None and len(out) >= limit:
                break
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            sid: {
                "requests": s.requests,
                "applied": s.applied,
                "429": s.rejected_429,
                "replays": s.replays,
                "max_in_any_1s": s.seen.max,
                "webhooks_dropped": s.webhooks_dropped,
            }
            for sid, s in self.shops.items()
        }

    # -- idempotency ---------------------------------------------------------------------------

    def remembered(self, shop: str, key: str) -> StoredAnswer | None:
        return self._idempotency.get((shop, key))

    def remember(self, shop: str, key: str, answer: StoredAnswer) -> None:
        cache = self._idempotency
        cache[(shop, key)] = answer
        if len(cache) > self._idempotency_capacity:
            cache.popitem(last=False)

    # -- OAuth tokens (BentoWeb) ---------------------------------------------------------------

    def issue_token(self, shop: str, ttl: float) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (shop, self.clock() + ttl)
        return token

    def token_shop(self, token: str) -> str | None:
        """The shop an unexpired access token belongs to."""
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._tokens[token]
            return None
        return entry[0]

    def expire_tokens(self, shop: str | None = None) -> int:
        doomed = [t for t, (s, _) in self._tokens.items() if shop is None or s == shop]
        for token in doomed:
            del self._tokens[token]
        return len(doomed)

    # -- stock --------------------------------------------------------------------------------

    def variant(
        self, state: ShopState, variant_id: str, product_id: str | None = None, *, create: bool
    ) -> Variant | None:
        """Look a variant up; with ``create`` (and ``create_missing``) make it at quantity 0.

        A Cyberbiz variant asked for under another product is not found.
        """
        found = state.variants.get(variant_id)
        if found is not None:
            if product_id is not None and found.product_id not in (None, product_id):
                return None
            if found.product_id is None and product_id is not None:
                found.product_id = product_id
            return found
        if not (create and self.create_missing):
            return None
        found = Variant(variant_id, product_id, 0, self.wall())
        state.variants[variant_id] = found
        return found

    def group(self, state: ShopState, group_id: str, *, create: bool) -> Group | None:
        found = state.groups.get(group_id)
        if found is None and create and self.create_missing:
            found = state.groups[group_id] = Group(group_id, 0, self.wall())
        return found

    def set_variant(self, state: ShopState, variant: Variant, quantity: int) -> list[Change]:
        """Set a variant's stock; a sync-group member sets the group's shared count."""
        if variant.group is not None and variant.group in state.groups:
            return self.set_group(state, state.groups[variant.group], quantity)
        change = Change(variant, variant.quantity)
        variant.quantity = quantity
        variant.updated_at = self.wall()
        return [change]

    def set_group(self, state: ShopState, group: Group, quantity: int) -> list[Change]:
        """Set a sync group's shared count; every member variant shows it."""
        now = self.wall()
        group.quantity = quantity
        group.updated_at = now
        changes = []
        for member_id in group.members:
            member = state.variants[member_id]
            changes.append(Change(member, member.quantity))
            member.quantity = quantity
            member.updated_at = now
        return changes

    def sale(self, state: ShopState, variant: Variant, quantity: int) -> list[Change] | None:
        """An external sale; None when the shop has less stock than ``quantity``."""
        if quantity > variant.quantity:
            return None
        return self.set_variant(state, variant, variant.quantity - quantity)

    def seed(self, seed: StockSeed) -> None:
        """Set absolute stock without emitting anything (test and demo set-up)."""
        state = self.shops[seed.shop]
        now = self.wall()
        for vid, qty in seed.variants.items():
            variant = state.variants.get(vid)
            if variant is None:
                state.variants[vid] = Variant(vid, seed.products.get(vid), qty, now)
            else:
                variant.quantity = qty
                variant.updated_at = now
        for vid, pid in seed.products.items():
            if vid in state.variants:
                state.variants[vid].product_id = pid
            else:
                state.variants[vid] = Variant(vid, pid, 0, now)
        for gid, qty in seed.groups.items():
            group = state.groups.setdefault(gid, Group(gid, qty, now))
            group.quantity = qty
            group.updated_at = now
        for gid, members in seed.group_members.items():
            group = state.groups.setdefault(gid, Group(gid, 0, now))
            for vid in members:
                variant = state.variants.setdefault(vid, Variant(vid, None, 0, now))
                if variant.group is not None and variant.group != gid:
                    old = state.groups[variant.group]
                    old.members.remove(vid)
                variant.group = gid
                if vid not in group.members:
                    group.members.append(vid)
        for group in state.groups.values():
            for vid in group.members:
                state.variants[vid].quantity = group.quantity

    def stock(self) -> dict[str, dict[str, dict[str, int]]]:
        return {
            sid: {
                "variants": {v.id: v.quantity for v in s.variants.values()},
                "groups": {g.id: g.quantity for g in s.groups.values()},
            }
            for sid, s in self.shops.items()
        }

    def reset(self) -> None:
        """Forget stock, log, counters, rate windows and idempotency answers (tokens stay)."""
        for state in self.shops.values():
            state.clear()
        self.log.clear()
        self._idempotency.clear()
