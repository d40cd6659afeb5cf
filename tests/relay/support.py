"""Helpers for the relay tests: shops, the in-process simulator, relays, writes, Kafka reads."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from jsonschema import Draft202012Validator, FormatChecker
from prometheus_client import CollectorRegistry

from bridge.commands import SetStock, to_write
from bridge.config import Config, KafkaConfig, OutboxConfig, RelayConfig, ShopConfig
from bridge.devtools.simulator import (
    FaultSettings,
    Simulator,
    SimulatorOptions,
    create_app,
    point_config_at,
)
from bridge.kafka.publisher import KafkaPublisher, Publisher
from bridge.outbox import NewWrite, OutboxRow, OutboxStore, Status, open_store
from bridge.outbox.store import ClaimedLane, LaneClaim
from bridge.platforms import client_for
from bridge.platforms.base import StockTarget
from bridge.relay import Relay, RelayOptions
from bridge.relay.cli import http_client
from bridge.serve import running_server

SCHEMAS = Path(__file__).parents[2] / "schemas"
CB_TOKEN = "cb-relay-token"
BW_CLIENT, BW_SECRET = "bw-relay-client", "bw-relay-secret"
PRODUCT = "1001"
FAST = 50.0  # req/s for shops whose test is not about the limit

# Short timings so the tests run in seconds; the lease stays well above request_timeout (a
# row's requests start no later than lease_until - request_timeout - 1 s: 7 s into a claim).
RELAY = RelayConfig(
    lease_seconds=10.0,
    max_attempts=12,
    backoff_base=0.05,
    backoff_cap=0.4,
    request_timeout=2.0,
    poll_interval=0.05,
)


def cyberbiz(shop_id: str, rate: float = FAST, **extra: Any) -> ShopConfig:
    return ShopConfig(
        id=shop_id,
        platform="cyberbiz",
        api_token=CB_TOKEN,
        webhook_secrets=("unused",),
        rate_limit=rate,
        **extra,
    )


def bentoweb(shop_id: str, rate: float = FAST) -> ShopConfig:
    return ShopConfig(
        id=shop_id,
        platform="bentoweb",
        client_id=BW_CLIENT,
        client_secret=BW_SECRET,
        webhook_secrets=("unused",),
        rate_limit=rate,
    )


def make_config(
    shops: Iterable[ShopConfig],
    *,
    dsn: str,
    bootstrap: str = "127.0.0.1:9",
    prefix: str = "commerce",
    relay: RelayConfig = RELAY,
) -> Config:
    return Config(
        kafka=KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix, linger_ms=1),
        outbox=OutboxConfig(dsn=dsn),
        relay=relay,
        shops={s.id: s for s in shops},
    )


def validator(name: str) -> Draft202012Validator:
    schema = orjson.loads((SCHEMAS / f"{name}.v1.json").read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def schema_errors(name: str, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(name).iter_errors(document)
    ]


# -- waiting --------------------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``check`` (sync or async) every 20 ms until it holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


# -- the simulator --------------------------------------------------------------------------------


@dataclass
class Sim:
    url: str
    simulator: Simulator
    http: httpx.AsyncClient

    async def stats(self) -> dict[str, dict[str, int]]:
        data: dict[str, dict[str, int]] = (await self.http.get("/_sim/stats")).json()
        return data

    async def requests(self, shop: str | None = None) -> list[dict[str, Any]]:
        params = {} if shop is None else {"shop": shop}
        data: list[dict[str, Any]] = (await self.http.get("/_sim/requests", params=params)).json()
        return data

    async def stock(self) -> dict[str, dict[str, dict[str, int]]]:
        data: dict[str, dict[str, dict[str, int]]] = (await self.http.get("/_sim/stock")).json()
        return data

    async def faults(self, **settings: Any) -> None:
        response = await self.http.post("/_sim/faults", json=settings)
        assert 200 == response.status_code, response.text


@asynccontextmanager
async def simulator(
    config: Config,
    *,
    seed: int = 7,
    no_sync_groups: Iterable[str] = (),
    token_ttl: float = 3600.0,
    **faults: Any,
) -> AsyncIterator[Sim]:
    """The real simulator over HTTP on a free port, for the shops of ``config``."""
    app = create_app(
        config,
        options=SimulatorOptions(no_sync_groups=frozenset(no_sync_groups), token_ttl=token_ttl),
        faults=FaultSettings(**faults),
        seed=seed,
    )
    async with running_server(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        yield Sim(url, app.state.simulator, http)


# -- relays ---------------------------------------------------------------------------------------

_owners = itertools.count(1)


@dataclass
class RelayHandle:
    relay: Relay
    registry: CollectorRegistry
    store: OutboxStore
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


@asynccontextmanager
async def relays(
    config: Config,
    sim_url: str,
    count: int = 1,
    *,
    publisher: Publisher | None = None,
    options: RelayOptions | None = None,
    clock: Callable[[], float] = time.time,
    wrap: Callable[[OutboxStore], OutboxStore] | None = None,
) -> AsyncIterator[list[RelayHandle]]:
    """``count`` running relays, each with its own store object, HTTP client and owner id.

    ``publisher`` (e.g. a never-connected KafkaPublisher) replaces the real one for all of them;
    ``clock`` (e.g. one running late) is theirs; ``wrap`` wraps each relay's store (a recorder).
    """
    handles: list[RelayHandle] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        for index in range(count):
            cfg = point_config_at(config, sim_url)
            store = await open_store(cfg.outbox.dsn)
            closers.append(store.close)
            await store.migrate()
            if wrap is not None:
                store = wrap(store)
            pools = {sid: http_client(cfg, bounded=True) for sid in cfg.shops}  # as run_relay
            closers += [pool.aclose for pool in pools.values()]
            pub: Publisher
            if publisher is None:
                kafka = KafkaPublisher(cfg.kafka, client_id=f"relay-test-{index}")
                await kafka.start(wait=True)
                closers.append(kafka.stop)
                pub = kafka
            else:
                pub = publisher
            registry = CollectorRegistry()
            relay = Relay(
                cfg,
                store,
                {sid: client_for(s, pools[sid]) for sid, s in cfg.shops.items()},
                pub,
                owner=f"relay-{next(_owners)}",
                registry=registry,
                options=options,
                clock=clock,
            )
            handles.append(RelayHandle(relay, registry, store))
        for handle in handles:
            handle.task = asyncio.create_task(handle.relay.run(handle.stop))
            await handle.relay.started.wait()
        yield handles
    finally:
        for handle in handles:
            handle.stop.set()
        await asyncio.gather(*(h.task for h in handles if h.task is not None))
        for close in reversed(closers):
            await close()


def most_in_any_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most of ``times`` within any half-open ``window`` seconds, as a platform counts."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


# -- outbox ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One claim of one row by a relay: when, and until when its lease ran."""

    row: int
    attempt: int
    at: float
    lease_until: float


class ClaimRecorder:
    """Wraps a store and records every claimed row; everything else passes through."""

    def __init__(self, inner: OutboxStore, claims: list[Claim]) -> None:
        self._inner = inner
        self.claims = claims

    async def claim(
        self, shop: str, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[OutboxRow]:
        claimed = await self._inner.claim(shop, owner, limit, lease_seconds, now)
        self.claims += [Claim(r.id, r.attempts, now, r.lease_until or 0.0) for r in claimed]
        return claimed

    async def claim_lane(
        self,
        shop: str,
        owner: str,
        limit: int,
        lease_seconds: float,
        now: float,
        *,
        rate: float,
        burst: int,
        horizon: float | None = None,
    ) -> ClaimedLane | None:
        claimed = await self._inner.claim_lane(
            shop, owner, limit, lease_seconds, now, rate=rate, burst=burst, horizon=horizon
        )
        if claimed is not None:
            self.claims += [
                Claim(r.id, r.attempts, now, r.lease_until or 0.0) for r in claimed.rows
            ]
        return claimed

    async def claim_lanes(
        self,
        owner: str,
        lease_seconds: float,
        now: float,
        wanted: Sequence[LaneClaim],
        *,
        release_empty: bool = False,
    ) -> dict[str, ClaimedLane]:
        taken = await self._inner.claim_lanes(
            owner, lease_seconds, now, wanted, release_empty=release_empty
        )
        for claimed in taken.values():
            self.claims += [
                Claim(r.id, r.attempts, now, r.lease_until or 0.0) for r in claimed.rows
            ]
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def recording(claims: list[Claim]) -> Callable[[OutboxStore], OutboxStore]:
    """A ``relays(wrap=...)`` that records every claim of the wrapped stores into ``claims``."""
    return lambda store: cast(OutboxStore, ClaimRecorder(store, claims))


def set_stock(
    shop: ShopConfig,
    quantity: int,
    key: str,
    *,
    variant: str | None = None,
    group: str | None = None,
) -> NewWrite:
    """The outbox row the commands consumer would write for a set-stock command."""
    product = PRODUCT if shop.platform == "cyberbiz" and variant is not None else None
    if (variant is None) == (group is None):
        raise ValueError("set_stock needs exactly one of variant or group")
    target = (
        StockTarget("variant", variant, product) if variant is not None
        else StockTarget("group", group or "")
    )  # fmt: skip
    return to_write(SetStock(key, shop.id, target, quantity, key))


async def add(store: OutboxStore, writes: Iterable[NewWrite]) -> list[int]:
    async with store.transaction() as tx:
        return [(await tx.add(w, time.time())).id for w in writes]


async def rows(store: OutboxStore, shop: str | None = None) -> list[OutboxRow]:
    return await store.list_rows(shop=shop, limit=100_000)


async def all_in(store: OutboxStore, ids: Iterable[int], *statuses: Status) -> bool:
    wanted = set(ids)
    found = [r for r in await rows(store) if r.id in wanted]
    return len(found) == len(wanted) and all(r.status in statuses for r in found)


# -- Kafka ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    key: str
    value: dict[str, Any]
    headers: Mapping[str, bytes]


async def read_topic(
    bootstrap: str, topic: str, *, partitions: int = 3, timeout: float = 30.0
) -> list[Record]:
    """Every record on ``topic`` up to its end offsets now (call after the relays stopped).

    ``partitions``: as many as the ``kafka_topics`` fixture created.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        while any([await consumer.position(tp) < end[tp] for tp in assigned]):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                for message in batch:
                    out.append(
                        Record(
                            (message.key or b"").decode(),
                            orjson.loads(message.value),
                            dict(message.headers),
                        )
                    )
        return out
    finally:
        await consumer.stop()
