"""Relay benchmark: real ``commerce-bridge relay`` and ``commerce-bridge simulate`` processes over
real HTTP.

    python bench/relay.py [--quick] [--dsn postgresql://…] [--pg-dsn postgresql://…] [--no-kafka]

Measures, each phase with fresh relay process(es) and shops of its own:

* ceiling: the relay's HTTP stack (``bridge.relay.cli.http_client``, Cyberbiz ``set_stock``)
  from this process to one unlimited simulated shop, 64 in flight, no outbox;
* bare client: the same stack on the relay's request pattern — 500 shops at 5/s each, the writes
  of (b), no outbox — deliveries/s and its CPU µs per delivery: what the load side alone costs;
* (a) one shop at 5/s, 1,000 queued writes (``--quick``: 100): achieved rate as a fraction of the
  limit (at the simulator: requests over the span from first to last), and the 429s;
* (b) 500 shops at once, each at 5/s with 10 writes (also with ``--quick``): aggregate deliveries/s
  from one relay process, p50/p99 queue-to-delivery latency (``created_at`` → ``done_at``), the
  relay's and the simulator's CPU (µs per delivery): the simulator is not the ceiling when its
  share is well under a core;
* (c) three relay processes on one shop (lanes handed around every 2 s): the most requests the
  simulator saw in any 1 s window, and the 429s;
* (d) 5,000 shops x 2 writes, one relay: deliveries/s against (b)'s;
* (e) two relay processes on PostgreSQL, 500 shops x (b)'s writes: deliveries/s together. The
  server is ``--pg-dsn``, else one started here from the machine's binaries
  (``tests/postgres_harness.py``: ``fsync=off``, as in the tests).

The outbox of (a)-(d) is SQLite in a temporary directory unless ``--dsn`` names a PostgreSQL
database. Delivery records go to Kafka at ``$KAFKA_BOOTSTRAP_SERVERS``, else to a local broker
started here (``bridge.devtools.kafka.local``); ``--no-kafka`` runs the relays against an
unreachable broker (records dropped and counted), which the report says. Progress goes to
stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cpu import cpu_seconds
from loadgen import percentile
from procs import Child, log, wait_http
from relay_parts import (
    LIMIT,
    PRODUCT,
    PYTHON,
    Row,
    Sizes,
    bare,
    bare_client,
    config_text,
    enqueue,
    many,
    pg,
    relay_processes,
    table,
    wait_done,
    wide,
    write,
)
from report import add_json_flag, load_average, machine_facts, write_summary
from samples import REPO

from bridge.config import KafkaConfig
from bridge.devtools.kafka.local import LocalKafka
from bridge.kafka.topics import ensure_topics
from bridge.outbox import OutboxStore, Status, open_store
from bridge.platforms import client_for
from bridge.platforms.base import StockTarget
from bridge.relay.cli import http_client, shared_session
from bridge.serve import free_port, run

# -- phases ---------------------------------------------------------------------------------------


async def ceiling(config: Path, count: int, concurrency: int = 64) -> float:
    """The relay's HTTP stack to the unlimited shop, ``concurrency`` in flight: requests/s."""
    from bridge.config import load_config

    cfg = load_config(config)
    wire = shared_session(cfg, traced=False)  # as the relay (pace_on="answer")
    http = http_client(cfg, wire, traced=False)
    client = client_for(cfg.shops["raw"], http)
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            await client.set_stock(StockTarget("variant", str(n), product=PRODUCT), 1, f"raw-{n}")

    started = asyncio.get_running_loop().time()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await http.aclose()
        await wire.close()
    return count / (asyncio.get_running_loop().time() - started)


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


@dataclass(frozen=True, slots=True)
class Fleet:
    """What one many-shops phase measured."""

    rate: float
    latencies: list[float]
    relay_us: float  # CPU of every relay process per delivery
    simulator_us: float
    relay_pct: float
    simulator_pct: float
    rejected: int
    worst: int


async def fleet(
    store: OutboxStore,
    config: Path,
    tmp: Path,
    simulator: Child,
    http: httpx.AsyncClient,
    shops: list[str],
    per_shop: int,
    relays: int = 1,
) -> Fleet:
    """``shops`` x ``per_shop`` writes queued at once, delivered by ``relays`` processes."""
    total, run_id, wanted = len(shops) * per_shop, uuid.uuid4().hex[:8], set(shops)
    with relay_processes(config, tmp, relays) as children:
        pids = [c.pid for c in children] + [simulator.pid]
        before = [cpu_seconds(pid) or 0.0 for pid in pids]
        writes = [write(s, v, run_id) for v in range(per_shop) for s in shops]
        enqueued = await enqueue(store, writes)
        await wait_done(store, wanted, total, timeout=600)
        used = [(cpu_seconds(pid) or 0.0) - b for pid, b in zip(pids, before, strict=True)]
    listed = await store.list_rows(status=Status.DONE, limit=10 * total)
    done = [r for r in listed if r.shop in wanted]
    finished = max(r.done_at or 0.0 for r in done)
    span = finished - enqueued
    stats = await sim_stats(http)
    return Fleet(
        rate=len(done) / span,
        latencies=sorted((r.done_at or 0.0) - enqueued for r in done),
        relay_us=1e6 * sum(used[:-1]) / len(done),
        simulator_us=1e6 * used[-1] / len(done),
        relay_pct=100 * sum(used[:-1]) / span,
        simulator_pct=100 * used[-1] / span,
        rejected=sum(stats[s]["429"] for s in shops),
        worst=max(stats[s]["max_in_any_1s"] for s in shops),
    )


def fleet_rows(tag: str, got: Fleet, goal: str, ratio: str, per_shop: int) -> list[Row]:
    ideal_p99 = (per_shop - 1) / LIMIT
    p50, p99 = percentile(got.latencies, 50), percentile(got.latencies, 99)
    return [
        Row(f"{tag}: deliveries/s", f"{got.rate:,.0f}/s", goal, ratio),
        Row(
            f"{tag}: queue -> delivery p50 / p99",
            f"{p50:.2f} s / {p99:.2f} s",
            f"p99 <= 5 s (at the limit ~{ideal_p99:.1f} s)",
            f"{p99 / 5:.2f} of 5 s",
        ),
        Row(
            f"{tag}: 429s / max requests in any 1 s (worst shop)",
            f"{got.rejected} / {got.worst}",
            "0 / <= 5",
        ),
        Row(
            f"{tag}: CPU µs per delivery (relay / simulator)",
            f"{got.relay_us:,.0f} / {got.simulator_us:,.0f}",
            "relay <= 400 (2,000/s in one core)",
            f"relay {got.relay_pct:.0f}%, simulator {got.simulator_pct:.0f}% of a core",
        ),
    ]


@asynccontextmanager
async def opened(dsn: str) -> AsyncIterator[OutboxStore]:
    store = await open_store(dsn)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


def pg_server(dsn: str | None) -> AbstractContextManager[str]:
    """``--pg-dsn``, else a throwaway cluster from the machine's binaries (the tests' harness)."""
    if dsn:
        return nullcontext(dsn)
    sys.path.insert(0, str(REPO))
    from tests.postgres_harness import postgres_cluster

    log("starting a PostgreSQL server (tests/postgres_harness.py)")
    return postgres_cluster()


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
        [
            PYTHON,
            "-m",
            "bridge",
            "--log-level",
            "warning",
            "simulate",
            "--port",
            str(sim_port),
            "--config",
            str(config),
        ],
        tmp / "simulator.log",
    )
    try:
        wait_http(f"{sim}/_sim/health", simulator.alive, timeout=120)
        async with opened(dsn) as store, httpx.AsyncClient(base_url=sim) as http:
            rows += await phases(args, sizes, store, config, tmp, simulator, http, run_id)
    finally:
        simulator.stop()
    rows.append(Row("outbox / deliveries", f"{dsn.split(':', 1)[0]} / {kafka_note}", ""))
    return rows


async def phases(
    args: argparse.Namespace,
    sizes: Sizes,
    store: OutboxStore,
    config: Path,
    tmp: Path,
    simulator: Child,
    http: httpx.AsyncClient,
    run_id: str,
) -> list[Row]:
    rows: list[Row] = []
    log(f"ceiling: {sizes.baseline} PUTs to an unlimited shop")
    top = await ceiling(config, sizes.baseline)
    rows.append(
        Row(
            "ceiling: relay's HTTP stack, 1 unlimited shop, 64 in flight, no outbox",
            f"{top:,.0f} req/s",
            "above 2,000/s",
            f"{top / 2000:.2f} of 2,000/s",
        )
    )
    log(f"bare client: {sizes.shops} shops x {sizes.per_shop} at {LIMIT:g}/s, no outbox")
    bare_rate, bare_us = await bare_client(config, bare(sizes), sizes.per_shop)
    rows.append(
        Row(
            f"bare client: {sizes.shops} shops x {sizes.per_shop}, no outbox: "
            "deliveries/s / CPU µs each",
            f"{bare_rate:,.0f}/s / {bare_us:,.0f} µs",
            "the load side's own cost",
            f"{bare_rate / (sizes.shops * LIMIT):.2f} of 2,500/s",
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

    log(f"(b) {sizes.shops} shops x {sizes.per_shop} writes at {LIMIT:g}/s each")
    b = await fleet(store, config, tmp, simulator, http, many(sizes), sizes.per_shop)
    tag = f"(b) {sizes.shops} shops x {sizes.per_shop}, 1 relay"
    rows += fleet_rows(
        tag,
        b,
        ">= 2,000/s",
        f"{b.rate / 2000:.2f} of goal, {b.rate / bare_rate:.2f} of bare client",
        sizes.per_shop,
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

    log(f"(d) {sizes.wide_shops} shops x {sizes.wide_per_shop} writes, 1 relay")
    d = await fleet(store, config, tmp, simulator, http, wide(sizes), sizes.wide_per_shop)
    tag = f"(d) {sizes.wide_shops:,} shops x {sizes.wide_per_shop}, 1 relay"
    rows += fleet_rows(
        tag,
        d,
        f">= 0.8 x (b) = {0.8 * b.rate:,.0f}/s",
        f"{d.rate / b.rate:.2f} of (b)",
        sizes.wide_per_shop,
    )

    if not args.no_pg:
        rows += await postgres_phase(args, sizes, config, tmp, simulator, http)
    return rows


def with_dsn(config: Path, dsn: str, into: Path) -> Path:
    """A copy of ``config`` whose outbox is ``dsn``."""
    lines = config.read_text().split("\n")
    into.write_text("\n".join(f'dsn = "{dsn}"' if ln.startswith("dsn = ") else ln for ln in lines))
    return into


async def postgres_phase(
    args: argparse.Namespace,
    sizes: Sizes,
    config: Path,
    tmp: Path,
    simulator: Child,
    http: httpx.AsyncClient,
) -> list[Row]:
    with pg_server(args.pg_dsn) as pg_dsn:
        pg_config = with_dsn(config, pg_dsn, tmp / "bridge-pg.toml")
        log(f"(e) 2 relays on PostgreSQL, {sizes.shops} shops x {sizes.per_shop} writes")
        async with opened(pg_dsn) as pg_store:
            e = await fleet(pg_store, pg_config, tmp, simulator, http, pg(sizes), sizes.per_shop, 2)
    tag = f"(e) {sizes.shops} shops x {sizes.per_shop}, 2 relays, PostgreSQL"
    return fleet_rows(tag, e, ">= 2,250/s together", f"{e.rate / 2250:.2f} of goal", sizes.per_shop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--dsn", help="a PostgreSQL outbox (default: SQLite in a temp dir)")
    parser.add_argument("--pg-dsn", help="the PostgreSQL server of (e) (default: start one)")
    parser.add_argument("--no-pg", action="store_true", help="skip (e), two relays on PostgreSQL")
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
    summary = [
        {"row": f"relay {r.name}", "goal": r.goal, "measured": r.value, "ratio": r.ratio}
        for r in rows
        if r.goal
    ]
    write_summary(args.json, "relay", summary, load_before=before, load_after=load_average())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
