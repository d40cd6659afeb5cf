"""Soak benchmark (issue 9): the whole pipeline (``stack.py``) at a steady webhook rate through
the ingress, for minutes.

    python bench/soak.py [--minutes 10] [--seconds S] [--rate 300] [--quick] [--json FILE]

One webhook in ten is a signed Cyberbiz ``variants/update`` of a synced variant (its level
walking down, so the consumer writes the other members through the outbox and the relay); the
rest are signed ``orders/create`` of other products. Every request is a distinct delivery. The
report: the RSS (``VmRSS``) of each process at the start and the end, the consumers' lag
(``bridge_consumer_lag`` on ``consume --metrics-port``) and the outbox depth (pending + in
flight) sampled every 2 s (max, end), and ``lost``: webhooks the ingress accepted (its
``bridge_webhooks_accepted`` per topic) minus the records on those topics. ``--quick`` = 60 s at
100/s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from ingress import topic_records
from loadgen import CLIENT_ERRORS, Pool
from procs import log
from report import add_json_flag, load_average, machine_facts, table, write_summary
from samples import SignedRequests, order_template, taipei_stamp
from stack import CB_SHOPS, Stack, product, rss_kib, running_stack, variant

from bridge.config import ShopConfig
from bridge.devtools.sign import sign_request
from bridge.outbox import open_store
from bridge.outbox.rows import LIVE

GROUPS = 10
SAMPLE_EVERY = 2.0
VARIANT_EVENT = "variants/update"


class VariantUpdates:
    """Signed ``variants/update`` deliveries of synced Cyberbiz variants, levels walking down."""

    def __init__(self, shop: ShopConfig, host: str) -> None:
        self.shop = shop
        self.host = host
        self.levels = {g: 100_000 for g in range(GROUPS)}

    def build(self, n: int, now: float) -> bytes:
        g = n % GROUPS
        self.levels[g] -= 1
        doc = {
            "id": int(variant(self.shop.id, g)),
            "product_id": int(product(self.shop.id, g)),
            "sku": f"SOAK-{g}",
            "inventory_management": True,
            "inventory_quantity": self.levels[g],
            "updated_at": taipei_stamp(now),
        }
        body = orjson.dumps(doc)
        suffix, headers = sign_request(self.shop, body, VARIANT_EVENT, now)
        lines = [f"POST /webhooks/{self.shop.id}{suffix} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(slots=True)
class Samples:
    lag: list[float] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: int = 0
    sent: int = 0


async def drive(stack: Stack, rate: float, seconds: float, samples: Samples) -> None:
    """Open loop: request n is due at start + n/rate; each one is built (and signed) when due."""
    url = urlsplit(stack.ingress)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    config = stack.config()
    shop = config.shops[CB_SHOPS[0]]
    variants = VariantUpdates(shop, url.netloc)
    orders = SignedRequests(shop, url.netloc, order_template())
    pool = Pool(host, port)
    await pool.fill(16)
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: bytes) -> None:
        try:
            async with asyncio.timeout(10.0):
                samples.statuses[await pool.send(request)] += 1
        except CLIENT_ERRORS:
            samples.errors += 1

    start = time.monotonic()
    total = int(rate * seconds)
    for n in range(total):
        due = start + n / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        now = time.time()
        request = variants.build(n // 10, now) if n % 10 == 0 else orders.build(10**11 + n, now)
        task = asyncio.create_task(one(request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        samples.sent += 1
    await asyncio.gather(*tasks)
    pool.close()


async def sample(stack: Stack, samples: Samples, stop: asyncio.Event) -> None:
    """Consumer lag and outbox depth every ``SAMPLE_EVERY`` seconds until ``stop``."""
    store = await open_store(stack.dsn)
    try:
        while True:
            lag = await asyncio.to_thread(stack.metric, stack.consumer_port, "bridge_consumer_lag")
            counts = await store.counts()
            samples.lag.append(lag)
            samples.depth.append(sum(n for (_s, status), n in counts.items() if status in LIVE))
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)
    finally:
        await store.close()


def accepted_by_topic(stack: Stack) -> dict[str, float]:
    import httpx
    from procs import prometheus_samples

    text = httpx.get(f"http://127.0.0.1:{stack.ops_port}/metrics", timeout=5.0).text
    found: dict[str, float] = collections.defaultdict(float)
    for name, labels, value in prometheus_samples(text):
        if name == "bridge_webhooks_accepted_total":
            found[labels["topic"]] += value
    return dict(found)


async def soak(stack: Stack, rate: float, seconds: float) -> tuple[Samples, dict[str, int], int]:
    """(samples, lost per topic, seconds until the consumer caught up after the load)."""
    samples = Samples()
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(stack, samples, stop))
    await drive(stack, rate, seconds, samples)
    ended = time.monotonic()
    deadline = ended + 120
    while stack.metric(stack.consumer_port, "bridge_consumer_lag") > 0:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    drained = time.monotonic() - ended
    stop.set()
    await sampler
    accepted = await quiescent(stack)
    config = stack.config()
    lost = {}
    for topic, count in accepted.items():
        lost[topic] = int(count) - await topic_records(config, topic)
    return samples, lost, round(drained)


async def quiescent(stack: Stack, timeout: float = 60.0) -> dict[str, float]:
    """The ingress's accepted counts once nothing more arrives: the relay's queued writes are
    delivered (each one makes the simulator send its webhook), no webhook is in flight at the
    ingress, and the counts held still for a second. Counted earlier, a webhook acknowledged by
    Kafka but not yet counted is a record more than ``accepted``."""
    deadline = time.monotonic() + timeout
    store = await open_store(stack.dsn)
    try:
        while time.monotonic() < deadline:
            counts = await store.counts()
            if sum(n for (_s, status), n in counts.items() if status in LIVE) == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        await store.close()
    last: dict[str, float] | None = None
    while time.monotonic() < deadline:
        idle = stack.metric(stack.ops_port, "bridge_webhooks_in_flight") == 0
        now = accepted_by_topic(stack)
        if idle and now == last:
            return now
        last = now
        await asyncio.sleep(1.0)
    return last or accepted_by_topic(stack)


def report(stack: Stack, rss: dict[str, tuple[int, int]], samples: Samples,
           lost: dict[str, int], drained: int) -> list[list[str]]:  # fmt: skip
    rows = [[f"RSS {name} (MiB)", f"{a / 1024:.1f}", f"{b / 1024:.1f}", f"{(b - a) / 1024:+.1f}"]
            for name, (a, b) in rss.items()]  # fmt: skip
    caught_up = f"caught up {drained} s after the load"
    rows.append(["consumer lag (records)", f"max {max(samples.lag):.0f}",
                 f"end {samples.lag[-1]:.0f}", caught_up])  # fmt: skip
    rows.append(["outbox depth (pending + in flight)", f"max {max(samples.depth)}",
                 f"end {samples.depth[-1]}", ""])  # fmt: skip
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(samples.statuses.items()))
    rows.append(["webhooks sent / answered", f"{samples.sent:,}", statuses,
                 f"{samples.errors} client errors"])  # fmt: skip
    total_lost = sum(lost.values())
    detail = ", ".join(f"{t.rsplit('.', 1)[-1]} {n}" for t, n in sorted(lost.items()))
    rows.append(["lost (accepted, not on Kafka)", f"lost = {total_lost}", detail,
                 "PASS" if total_lost == 0 else "**FAIL**"])  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="duration in seconds (overrides --minutes)")
    parser.add_argument("--rate", type=float, default=300.0, help="webhooks per second")
    parser.add_argument("--quick", action="store_true", help="60 s at 100/s")
    add_json_flag(parser)
    args = parser.parse_args()
    seconds = args.seconds or (60.0 if args.quick else args.minutes * 60)
    rate = 100.0 if args.quick and "--rate" not in sys.argv else args.rate
    command = "python bench/soak.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    before = load_average()
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as folder,
        running_stack(Path(folder), groups=GROUPS) as stack,
    ):
        pids = stack.pids()
        start_rss = {name: rss_kib(pid) for name, pid in pids.items()}
        log(f"soak: {rate:g} webhooks/s for {seconds:g} s")
        samples, lost, drained = asyncio.run(soak(stack, rate, seconds))
        dead = stack.dead()
        if dead:  # a process that died makes every other row meaningless
            raise RuntimeError(f"died during the soak: {', '.join(dead)}\n{dead}")
        rss = {name: (start_rss[name], rss_kib(pid)) for name, pid in pids.items()}
        rows = report(stack, rss, samples, lost, drained)
    after = load_average()
    out = [f"$ {command.strip()}", ""]
    out += [f"{name}: {value}" for name, value in machine_facts()]
    out += [f"{rate:g} webhooks/s for {seconds:g} s; load average before: {before}; "
            f"after: {after}", ""]  # fmt: skip
    out += table(["measurement", "start / max", "end", "change / note"], rows)
    sys.stdout.write("\n".join(out) + "\n")
    total_lost = sum(lost.values())
    summary = [
        {"row": f"soak {seconds:g} s at {rate:g}/s: lost", "goal": "0",
         "measured": str(total_lost), "ratio": "met" if total_lost == 0 else "**missed**"},
    ]  # fmt: skip
    for name, (a, b) in rss.items():
        summary.append({"row": f"soak: RSS {name}", "goal": "flat",
                        "measured": f"{a / 1024:.0f} → {b / 1024:.0f} MiB",
                        "ratio": f"{b / a:.2f}" if a else "-"})  # fmt: skip
    summary.append({"row": "soak: consumer lag max / end", "goal": "bounded, 0 at the end",
                    "measured": f"{max(samples.lag):.0f} / {samples.lag[-1]:.0f}",
                    "ratio": "met" if samples.lag[-1] == 0 else "**missed**"})  # fmt: skip
    depth = f"{max(samples.depth)} / {samples.depth[-1]}"
    summary.append({"row": "soak: outbox depth max / end", "goal": "bounded",
                    "measured": depth, "ratio": "-"})  # fmt: skip
    write_summary(args.json, "soak", summary, load_before=before, load_after=after)
    return 0 if total_lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
