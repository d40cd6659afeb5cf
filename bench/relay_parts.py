"""The pieces of ``bench/relay.py``: sizes, the shared configuration, writes, relay processes, the
bare-client load (the relay's request pattern without the outbox) and the table."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from procs import Child, log, wait_http

from bridge.commands import SetStock, to_write
from bridge.config import load_config
from bridge.outbox import NewWrite, OutboxStore
from bridge.platforms import client_for
from bridge.platforms.base import PlatformClient, StockTarget
from bridge.relay.cli import http_client, shared_session
from bridge.relay.lanes import RelayOptions
from bridge.relay.pacing import Flag, Send, SendWindow
from bridge.serve import free_port

LIMIT = 5.0
TOKEN = "bench-token"  # noqa: S105 -- a throwaway token for the loopback simulator
PRODUCT = "1001"
PYTHON = sys.executable


@dataclass(frozen=True, slots=True)
class Sizes:
    one_shop: int
    shops: int
    per_shop: int
    three: int
    baseline: int
    wide_shops: int = 5_000
    wide_per_shop: int = 2

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(one_shop=100, shops=500, per_shop=10, three=40, baseline=3_000)
        return cls(one_shop=1_000, shops=500, per_shop=10, three=100, baseline=10_000)


@dataclass(slots=True)
class Row:
    name: str
    value: str
    goal: str = ""
    ratio: str = ""


# Shop sets, each used by one phase only (a phase never inherits another's rate windows).
def many(sizes: Sizes) -> list[str]:
    return [f"s{n:04}" for n in range(sizes.shops)]


def bare(sizes: Sizes) -> list[str]:
    return [f"b{n:04}" for n in range(sizes.shops)]


def wide(sizes: Sizes) -> list[str]:
    return [f"w{n:05}" for n in range(sizes.wide_shops)]


def pg(sizes: Sizes) -> list[str]:
    return [f"p{n:04}" for n in range(sizes.shops)]


def shop_ids(sizes: Sizes) -> list[str]:
    return ["one", *many(sizes), "three", "raw", *bare(sizes), *wide(sizes), *pg(sizes)]


def config_text(sim_url: str, dsn: str, bootstrap: str, prefix: str, sizes: Sizes) -> str:
    lines = [
        "[kafka]",
        f'bootstrap_servers = "{bootstrap}"',
        f'topic_prefix = "{prefix}"',
        "[outbox]",
        f'dsn = "{dsn}"',
        "[relay]",
        "poll_interval = 0.1",
        "[privacy]",
        'mode = "redact"',
    ]
    for shop in shop_ids(sizes):
        rate = 1_000_000.0 if shop == "raw" else LIMIT
        lines += [
            "[[shops]]",
            f'id = "{shop}"',
            'platform = "cyberbiz"',
            f'api_base = "{sim_url}/cyberbiz/{shop}"',
            f'api_token = "{TOKEN}"',
            'webhook_secrets = ["unused"]',
            f"rate_limit = {rate}",
        ]
    return "\n".join(lines) + "\n"


def write(shop: str, variant: int, run_id: str) -> NewWrite:
    key = f"{run_id}-{shop}-{variant}"
    target = StockTarget("variant", str(variant), product=PRODUCT)
    return to_write(SetStock(key, shop, target, variant % 1000, key))


async def enqueue(store: OutboxStore, writes: list[NewWrite]) -> float:
    """All writes in one transaction (as a consumer batch would); returns its commit time.

    The rows are queued when the transaction commits (no relay sees them before), so rates and
    queue-to-delivery latencies count from then: 5,000 adds take ~1.7 s here, the load side's
    time, not the relay's."""
    now = time.time()
    async with store.transaction() as tx:
        for item in writes:
            await tx.add(item, now)
    return time.time()


async def wait_done(store: OutboxStore, shops: set[str], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = await store.counts()
        done = sum(n for (shop, status), n in counts.items() if shop in shops and status == "done")
        dead = sum(n for (shop, status), n in counts.items() if shop in shops and status == "dead")
        if dead:
            hint = "see `commerce-bridge outbox list --status dead`"
            raise RuntimeError(f"{dead} rows went dead: {hint}")
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{count} delivered after {timeout:.0f}s")
        await asyncio.sleep(0.2)


@contextmanager
def relay_processes(
    config: Path, tmp: Path, count: int = 1, extra: tuple[str, ...] = ()
) -> Iterator[list[Child]]:
    children = []
    try:
        for n in range(count):
            port = free_port()
            argv = [
                PYTHON, "-m", "bridge", "--log-level", "warning", "--log-format", "json", "relay",
                "--config", str(config), "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                "--owner", f"bench-{n}-{uuid.uuid4().hex[:6]}", *extra,
            ]  # fmt: skip
            child = Child(f"relay-{n}", argv, tmp / f"relay-{config.stem}-{n}.log")
            children.append(child)
            wait_http(f"http://127.0.0.1:{port}/readyz", child.alive, timeout=60)
        yield children
    finally:
        for child in children:
            child.stop()
            if child.proc.returncode not in (0, None):
                log(f"{child.name} exited {child.proc.returncode}:\n{child.tail()}")


async def bare_client(config: Path, shops: list[str], per_shop: int) -> tuple[float, float]:
    """The relay's request pattern without the outbox: its HTTP stack and platform clients, each
    shop's writes at the relay's own pace (the limit less its headroom). Deliveries/s and this
    process's CPU µs per delivery."""
    cfg = load_config(config)
    wire = shared_session(cfg, traced=False)  # as the relay (pace_on="answer")
    http = http_client(cfg, wire, traced=False, bounded=True)  # each call in a wait_for
    clients: dict[str, PlatformClient] = {s: client_for(cfg.shops[s], http) for s in shops}
    run_id = uuid.uuid4().hex[:8]

    never = Flag()

    async def one(shop: str, k: int, send: Send) -> None:
        target = StockTarget("variant", str(k), product=PRODUCT)
        try:
            call = clients[shop].set_stock(target, k, f"{run_id}-{shop}-{k}")
            await asyncio.wait_for(call, cfg.relay.request_timeout)
        finally:
            send.finish()

    async def shop_load(shop: str, start: float) -> None:
        # The relay's pacing: its send window (``pace_on="answer"``) on top of the spacing.
        window = SendWindow(LIMIT, time.monotonic, headroom=RelayOptions().rate_headroom)
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        sends = []
        for k in range(per_shop):
            await window.wait_turn(never)
            sends.append(asyncio.ensure_future(one(shop, k, window.start())))
        await asyncio.gather(*sends)

    try:
        cpu, started = time.process_time(), time.monotonic()
        spread = 1.0 / LIMIT  # first requests spread over one interval, as the relay's lanes
        await asyncio.gather(
            *(shop_load(s, started + spread * n / len(shops)) for n, s in enumerate(shops))
        )
        wall, used = time.monotonic() - started, time.process_time() - cpu
    finally:
        await http.aclose()
        await wire.close()
    count = len(shops) * per_shop
    return count / wall, 1e6 * used / count


def table(rows: list[Row]) -> str:
    head = Row("measurement", "value", "goal", "ratio")
    widths = [max(len(getattr(r, f)) for r in [head, *rows]) for f in ("name", "value", "goal")]
    lines = []
    for n, r in enumerate([head, *rows]):
        cells = [
            r.name.ljust(widths[0]),
            r.value.rjust(widths[1]),
            r.goal.ljust(widths[2]),
            r.ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in (*widths, len(head.ratio))) + "|")
    return "\n".join(lines)
