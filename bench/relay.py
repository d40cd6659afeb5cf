"""Relay benchmark: real ``commerce-bridge relay`` and ``commerce-bridge simulate`` processes over
real HTTP.

    python bench/relay.py [--quick] [--dsn postgresql://…] [--no-kafka]

Measures, each phase with fresh relay process(es) on one outbox database:

* baseline: direct httpx PUTs from this process to the simulator, no outbox — the ceiling of one
  Python process doing these requests on this machine;
* (a) one shop at 5/s, 1,000 queued writes (``--quick``: 100): achieved rate as a fraction of the
  limit (at the simulator: requests over the span from first to last), and the 429s;
* (b) 500 shops at once, each at 5/s with 10 writes (``--quick``: 4): aggregate deliveries/s
  from one relay process, and p50/p99 queue-to-delivery latency (``created_at`` → ``done_at``);
* (c) three relay processes on one shop (lanes handed around every 2 s): the most requests the
  simulator saw in any 1 s window, and the 429s.

The outbox is SQLite in a temporary directory unless ``--dsn`` names a PostgreSQL database.
Delivery records go to Kafka at ``$KAFKA_BOOTSTRAP_SERVERS``, else to a local broker started here
(``bridge.devtools.kafka.local``); ``--no-kafka`` runs the relays against an unreachable broker
(records
dropped and counted), which the report says. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cpu import CpuMeter
from loadgen import percentile
from procs import Child, log, wait_http
from report import add_json_flag, load_average, machine_facts, write_summary

from bridge.commands import SetStock, to_write
from bridge.config import KafkaConfig
from bridge.devtools.kafka.local import LocalKafka
from bridge.kafka.topics import ensure_topics
from bridge.outbox import NewWrite, OutboxStore, Status, open_store
from bridge.platforms.base import StockTarget
from bridge.serve import free_port, run

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

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(one_shop=100, shops=500, per_shop=4, three=40, baseline=3_000)
        return cls(one_shop=1_000, shops=500, per_shop=10, three=100, baseline=10_000)


@dataclass(slots=True)
class Row:
    name: str
    value: str
    goal: str = ""
    ratio: str = ""


# -- configuration --------------------------------------------------------------------------------


def shop_ids(sizes: Sizes) -> list[str]:
    return ["one", *(f"s{n:04}" for n in range(sizes.shops)), "three", "raw"]


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
    """All writes in one transaction (as a consumer batch would); returns the enqueue time."""
    now = time.time()
    async with store.transaction() as tx:
        for item in writes:
            await tx.add(item, now)
    return now


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


# -- processes ------------------------------------------------------------------------------------


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
            child = Child(f"relay-{n}", argv, tmp / f"relay-{n}.log")
            children.append(child)
            wait_http(f"http://127.0.0.1:{port}/readyz", child.alive, timeout=60)
        yield children
    finally:
        for child in children:
            child.stop()
            if child.proc.returncode not in (0, None):
                log(f"{child.name} exited {child.proc.returncode}:\n{child.tail()}")


# -- phases ---------------------------------------------------------------------------------------


async def baseline(sim: str, count: int, concurrency: int = 64) -> float:
    """Direct PUTs to an unlimited shop, ``concurrency`` in flight: requests per second.

    One client (pool) per worker, as the relay has one per shop: httpcore scans a whole pool per
    request, so a single shared pool would measure the pool, not the requests.
    """
    url = f"{sim}/cyberbiz/raw/v1/products/{PRODUCT}/product_variants/{{}}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    queue = iter(range(count))

    async def worker() -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            for n in queue:
                response = await http.put(
                    url.format(n),
                    content=b'{"inventory_quantity": 1}',
                    headers={**headers, "Idempotency-Key": f"raw-{n}"},
                )
                response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def sim_stats(http: httpx.AsyncClient) -> dict[str, dict[str, int]]:
    response = await http.get("/_sim/stats", timeout=60.0)
    response.raise_for_status()
    stats: dict[str, dict[str, int]] = response.json()
    return stats


async def sim_puts(http: httpx.AsyncClient, shop: str) -> list[dict[str, Any]]:
    """The simulator's log of PUTs to ``shop``, oldest first (``t``: arrival, Unix seconds)."""
    response = await http.get("/_sim/requests", params={"shop": shop}, timeout=60.0)
    response.raise_for_status()
    return [r for r in response.json() if r["method"] == "PUT"]


async def bench(args: argparse.Namespace, tmp: Path, bootstrap: str, kafka_note: str) -> list[Row]:
    sizes = Sizes.of(args.quick)
    dsn = args.dsn or f"sqlite:///{tmp / 'outbox.db'}"
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    config = tmp / "bridge.toml"
    config.write_text(config_text(sim, dsn, bootstrap, prefix, sizes))
    if not args.no_kafka:
        await ensure_topics(KafkaConfig(bootstrap_servers=bootstrap, topic_prefix=prefix))
    run_id = uuid.uuid4().hex[:8]
    rows: list[Row] = []
    simulator = Child(
        "simulator",
        [PYTHON, "-m", "bridge", "--log-level", "warning", "simulate", "--port", str(sim_port),
         "--config", str(config)],
        tmp / "simulator.log",
    )  # fmt: skip
    store = await open_store(dsn)
    try:
        wait_http(f"{sim}/_sim/health", simulator.alive)
        await store.migrate()
        http = httpx.AsyncClient(base_url=sim)

        log(f"baseline: {sizes.baseline} direct PUTs")
        ceiling = await baseline(sim, sizes.baseline)
        rows.append(
            Row(
                "baseline: direct httpx PUTs, 1 process, no outbox",
                f"{ceiling:,.0f} req/s",
                "ceiling",
                "1.00",
            )
        )

        log(f"(a) one shop at {LIMIT:g}/s, {sizes.one_shop} writes")
        with relay_processes(config, tmp):
            await enqueue(store, [write("one", n, run_id) for n in range(sizes.one_shop)])
            await wait_done(store, {"one"}, sizes.one_shop, timeout=sizes.one_shop / LIMIT * 2 + 60)
        log_a = await sim_puts(http, "one")
        stats = await sim_stats(http)
        span = log_a[-1]["t"] - log_a[0]["t"]
        achieved = (len(log_a) - 1) / span if span > 0 else float("nan")
        rows.append(
            Row(
                f"(a) 1 shop, {sizes.one_shop} writes: achieved rate",
                f"{achieved:.3f}/s",
                ">= 0.98 of 5/s",
                f"{achieved / LIMIT:.3f} of limit",
            )
        )
        rows.append(
            Row(
                "(a) 429s / max requests in any 1 s",
                f"{stats['one']['429']} / {stats['one']['max_in_any_1s']}",
                "0 / <= 5",
            )
        )

        total = sizes.shops * sizes.per_shop
        log(f"(b) {sizes.shops} shops x {sizes.per_shop} writes at {LIMIT:g}/s each")
        many = {f"s{n:04}" for n in range(sizes.shops)}
        with relay_processes(config, tmp) as (relay,):
            meter = CpuMeter({"relay": relay.pid, "simulator": simulator.pid})
            meter.start()
            writes = [write(s, v, run_id) for v in range(sizes.per_shop) for s in sorted(many)]
            enqueued = await enqueue(store, writes)
            await wait_done(store, many, total, timeout=300)
            cpu = meter.stop()
        listed = await store.list_rows(status=Status.DONE, limit=10 * total)
        done = [r for r in listed if r.shop in many]
        finished = max(r.done_at or 0.0 for r in done)
        latencies = sorted((r.done_at or 0.0) - r.created_at for r in done)
        rate = len(done) / (finished - enqueued)
        ideal = min(sizes.shops * LIMIT, ceiling)
        stats = await sim_stats(http)
        rejected = sum(stats[s]["429"] for s in many)
        worst = max(stats[s]["max_in_any_1s"] for s in many)
        rows.append(
            Row(
                f"(b) {sizes.shops} shops x {sizes.per_shop}: deliveries/s (1 relay)",
                f"{rate:,.0f}/s",
                ">= 2,000/s",
                f"{rate / ceiling:.2f} of baseline, {rate / ideal:.2f} of min(500 x 5/s, baseline)",
            )
        )
        ideal_p99 = (sizes.per_shop - 1) / LIMIT
        rows.append(
            Row(
                "(b) queue -> delivery p50 / p99",
                f"{percentile(latencies, 50):.2f} s / {percentile(latencies, 99):.2f} s",
                f"at the limit: ~{ideal_p99 / 2:.1f} s / ~{ideal_p99:.1f} s",
            )
        )
        rows.append(
            Row(
                "(b) 429s / max requests in any 1 s (worst shop)",
                f"{rejected} / {worst}",
                "0 / <= 5",
            )
        )
        rows.append(
            Row(
                "(b) CPU, % of one core",
                f"relay {cpu.get('relay', 0):.0f}%, simulator {cpu.get('simulator', 0):.0f}%",
                f"{os.cpu_count()} cores",
            )
        )

        log(f"(c) three relay processes on one shop, {sizes.three} writes")
        with relay_processes(config, tmp, 3, ("--lane-turn", "2")):
            await enqueue(store, [write("three", n, run_id) for n in range(sizes.three)])
            await wait_done(store, {"three"}, sizes.three, timeout=sizes.three / LIMIT * 2 + 60)
        stats = await sim_stats(http)
        log_c = await sim_puts(http, "three")
        span = log_c[-1]["t"] - log_c[0]["t"]
        rows.append(
            Row(
                "(c) 3 relays, 1 shop: max requests in any 1 s",
                str(stats["three"]["max_in_any_1s"]),
                "<= 5",
                f"{(len(log_c) - 1) / span / LIMIT:.3f} of limit overall",
            )
        )
        rows.append(Row("(c) 429s", str(stats["three"]["429"]), "0"))
        await http.aclose()
    finally:
        await store.close()
        simulator.stop()
    rows.append(Row("outbox / deliveries", f"{dsn.split(':', 1)[0]} / {kafka_note}", ""))
    return rows


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--dsn", help="a PostgreSQL outbox (default: SQLite in a temp dir)")
    parser.add_argument("--no-kafka", action="store_true", help="do not publish deliveries")
    add_json_flag(parser)
    args = parser.parse_args()
    before = load_average()
    command = "python bench/relay.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as folder:
        tmp = Path(folder)
        broker: LocalKafka | None = None
        if args.no_kafka:
            bootstrap, note = "127.0.0.1:9", "not published (--no-kafka)"
        elif os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
            note = f"Kafka at {bootstrap}"
        else:
            log("starting a local Kafka broker")
            broker = LocalKafka(tmp / "kafka")
            bootstrap = broker.start()
            note = "local Kafka (bridge.devtools.kafka.local)"
        try:
            rows = run(bench(args, tmp, bootstrap, note))
        finally:
            if broker is not None:
                broker.stop()
    sys.stdout.write(f"$ {command.strip()}\n\n")
    for name, value in machine_facts():
        sys.stdout.write(f"{name}: {value}\n")
    sys.stdout.write("\n" + table(rows) + "\n")
    summary = [{"row": f"relay {r.name}", "goal": r.goal, "measured": r.value, "ratio": r.ratio}
               for r in rows if r.goal]  # fmt: skip
    write_summary(args.json, "relay", summary, load_before=before, load_after=load_average())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
