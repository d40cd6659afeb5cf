"""Outbox at scale (issue 10): an outbox holding 1,000,000 finished rows against an empty one, on
SQLite and on PostgreSQL.

    python bench/outbox_scale.py [--quick] [--rows N] [--stores sqlite,postgres] [--json FILE]

For each store, two fresh databases with the same schema: *empty*, and *full* (``--rows``
finished rows, default 1,000,000, ``--quick`` 200,000, bulk-inserted in SQL by
``outbox_fill.py``). In each, measured the same way (PostgreSQL ``ANALYZE``d once the pending
rows are in, in both databases, as autovacuum keeps a running outbox):

* **claim / mark**: ``SHOPS`` shops with ``PENDING`` pending rows each (distinct targets), queued
  ``PASSES`` times (~960 claims, ~7,900 marks per database: a p99 that is not one hiccup); rounds
  (alternating between the two databases, so that a busy neighbour slows both alike)
  of ``claim(shop, limit=10)`` over the shops, each claimed row ``mark_done``; p99 of each call
  (the store API as the relay calls it, timed around the await); one row in ten fails once
  (``mark_retry``, which looks for a newer row of its target) and is claimed again. Also
  ``due_shops`` (every relay poll) and ``depth`` (the relay's depth gauge, every 5 s).
* **relay throughput**: a real ``commerce-bridge relay`` process against a real
  ``commerce-bridge simulate`` process, ``SHOPS`` shops at 1,000 requests/s each (so the rate
  limit is not what is measured), ``RELAYED`` rows queued at once: deliveries per second from the
  enqueue's commit to the last ``done_at``; empty, full, empty, full, the best run of each. The
  simulator's CPU is its ceiling.

PostgreSQL is a throw-away cluster started like the tests' (``bench/pgserver.py``: ``fsync=off``);
SQLite is a file in a temporary directory (WAL, ``synchronous = FULL``). Ratios compare full to
empty within one store; the goal is within 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
from cpu import CpuMeter
from loadgen import percentile
from outbox_fill import fill_postgres, fill_sqlite
from pgserver import fresh_schema, postgres_server
from procs import Child, log, wait_http
from report import add_json_flag, load_average, machine_facts, table, write_summary

from bridge.commands import SetStock, to_write
from bridge.config import KafkaConfig
from bridge.kafka.topics import ensure_topics
from bridge.outbox import OutboxStore, open_store
from bridge.platforms.base import StockTarget
from bridge.serve import free_port, run

PYTHON = sys.executable
SHOPS = 20
PENDING = 60  # rows per shop for the claim/mark rounds
# Times the pending rows are queued and worked off: 160 claims (and 1,320 marks) a pass, so a p99
# of one pass is its second-slowest claim, whatever the machine did at that moment.
PASSES = 6
RELAYED = 3_000  # rows the relay process delivers per database (--quick too)
TOKEN = "bench-token"  # noqa: S105 -- a throwaway token for the loopback simulator
LEASE = 30.0
RETRY_EVERY = 10  # one claimed row in ten fails once (mark_retry), the rest mark_done
T = TypeVar("T")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # :9 = records dropped
PREFIX = f"bench{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class Measured:
    """One database's figures; latencies in milliseconds."""

    claim: list[float] = field(default_factory=list)
    mark: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    depth: list[float] = field(default_factory=list)
    relayed: int = RELAYED  # rows the relay process delivers
    relay_rate: float = 0.0
    relay_cpu: dict[str, float] = field(default_factory=dict)
    fill_seconds: float = 0.0


def shop(n: int) -> str:
    return f"s{n:03}"


def config_text(sim: str, dsn: str) -> str:
    lines = [
        "[kafka]", f'bootstrap_servers = "{BOOTSTRAP}"', f'topic_prefix = "{PREFIX}"',
        "[outbox]", f'dsn = "{dsn}"',
        "[relay]", "poll_interval = 0.1", "[privacy]", 'mode = "redact"',
    ]  # fmt: skip
    for n in range(SHOPS):
        lines += [
            "[[shops]]", f'id = "{shop(n)}"', 'platform = "cyberbiz"',
            f'api_base = "{sim}/cyberbiz/{shop(n)}"', f'api_token = "{TOKEN}"',
            'webhook_secrets = ["unused"]', "rate_limit = 1000.0", "burst = 20",
        ]  # fmt: skip
    return "\n".join(lines) + "\n"


async def enqueue(store: OutboxStore, run_id: str, per_shop: int) -> float:
    """``per_shop`` pending rows for each shop, distinct targets, in one transaction; its commit
    time (the rows are queued from then on)."""
    now = time.time()
    async with store.transaction() as tx:
        for n in range(SHOPS):
            for v in range(per_shop):
                key = f"{run_id}-{n}-{v}"
                target = StockTarget("variant", str(20_000 + v), product="1001")
                await tx.add(to_write(SetStock(key, shop(n), target, v, key)), now)
    return time.time()


async def timed(into: list[float], awaitable: Awaitable[T]) -> T:
    """``await awaitable``, its wall time in ms appended to ``into``."""
    started = time.perf_counter()
    result = await awaitable
    into.append(1000 * (time.perf_counter() - started))
    return result


async def analyze(dsn: str) -> None:
    """PostgreSQL: fresh planner statistics, as autovacuum keeps them in a running outbox (its
    threshold is a tenth of the table changed: minutes at relay rates). SQLite has none."""
    if dsn.startswith("sqlite"):
        return
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE outbox")
    finally:
        await conn.close()


async def one_round(store: OutboxStore, measured: Measured) -> bool:
    """One relay poll: due_shops, claim(10) per due shop, each row marked; False: none due."""
    owner = "bench"
    due = await timed(measured.due, store.due_shops(time.time()))
    for name in due:
        rows = await timed(measured.claim, store.claim(name, owner, 10, LEASE, time.time()))
        for row in rows:
            now = time.time()
            if row.attempts == 1 and row.id % RETRY_EVERY == 0:  # a 429 or 5xx: again later
                mark = store.mark_retry(row.id, owner, now, "bench: 503", now)
                await timed(measured.mark, mark)
            else:
                await timed(measured.mark, store.mark_done(row.id, owner, now))
    return bool(due)


async def claim_and_mark(pair: list[tuple[OutboxStore, str, Measured]]) -> None:
    """``PASSES`` times: the pending rows queued, then rounds alternating between the databases
    until every pending row is done in both (the machine's noise then falls on both alike)."""
    for _pass in range(PASSES):
        for store, dsn, _measured in pair:
            await enqueue(store, uuid.uuid4().hex[:8], PENDING)
            await analyze(dsn)
        for _ in range(5):  # the relay's depth gauge, every 5 s: a few samples each
            for store, _dsn, measured in pair:
                await timed(measured.depth, store.depth())
        busy = [True] * len(pair)
        while any(busy):
            for n, (store, _dsn, measured) in enumerate(pair):
                if busy[n]:
                    busy[n] = await one_round(store, measured)


async def delivered(dsn: str, after_id: int) -> tuple[int, float]:
    """(rows done, the latest done_at) among the rows with an id above ``after_id``."""
    sql = "SELECT COUNT(*), MAX(done_at) FROM outbox WHERE id > {p} AND status = 'done'"
    if dsn.startswith("sqlite"):
        conn = sqlite3.connect(dsn.removeprefix("sqlite:///"))
        try:
            count, last = conn.execute(sql.format(p="?"), (after_id,)).fetchone()
        finally:
            conn.close()
    else:
        pg = await asyncpg.connect(dsn)
        try:
            count, last = await pg.fetchrow(sql.format(p="$1"), after_id)
        finally:
            await pg.close()
    return int(count), float(last or 0.0)


async def last_id(store: OutboxStore) -> int:
    rows = await store.list_rows(limit=1)
    return rows[0].id if rows else 0


async def relay_throughput(
    store: OutboxStore, dsn: str, tmp: Path, sim: str, sim_pid: int, measured: Measured
) -> None:
    relayed = measured.relayed
    name = uuid.uuid4().hex[:6]
    config = tmp / f"relay-{name}.toml"
    config.write_text(config_text(sim, dsn))
    port = free_port()
    argv = [
        PYTHON, "-m", "bridge", "--log-level", "error", "--log-format", "json", "relay",
        "--config", str(config), "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
    ]  # fmt: skip
    relay = Child("relay", argv, tmp / f"relay-{name}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", relay.alive, timeout=60)
        before = await last_id(store)
        meter = CpuMeter({"relay": relay.pid, "simulator": sim_pid})
        meter.start()
        enqueued = await enqueue(store, name, relayed // SHOPS)
        deadline = time.monotonic() + 300
        while True:
            count, finished = await delivered(dsn, before)
            if count >= relayed:
                break
            if time.monotonic() > deadline or not relay.alive():
                raise RuntimeError(f"relay delivered {count}/{relayed}:\n{relay.tail()}")
            await asyncio.sleep(0.1)
        measured.relay_cpu = meter.stop()
        measured.relay_rate = relayed / (finished - enqueued)
    finally:
        relay.stop()


async def fill(dsn: str, rows: int) -> float:
    """``rows`` finished rows into a migrated database; the seconds it took."""
    started = time.monotonic()
    log(f"filling {rows:,} finished rows into {dsn.split(':', 1)[0]}")
    if dsn.startswith("sqlite"):
        path = dsn.removeprefix("sqlite:///")
        await asyncio.to_thread(fill_sqlite, path, rows, SHOPS, time.time())
    else:
        await fill_postgres(dsn, rows, SHOPS, time.time())
    return time.monotonic() - started


async def measure_pair(
    empty: str, full: str, args: argparse.Namespace, tmp: Path, sim: str, sim_pid: int
) -> list[Measured]:
    """The same measurements on an empty and a full database, interleaved; relay best of 2."""
    stores = [await open_store(dsn) for dsn in (empty, full)]
    results = [Measured(relayed=args.relayed) for _ in stores]
    try:
        for store in stores:
            await store.migrate()
        results[1].fill_seconds = await fill(full, args.rows)
        await claim_and_mark(list(zip(stores, (empty, full), results, strict=True)))
        for _ in range(2):
            for store, dsn, measured in zip(stores, (empty, full), results, strict=True):
                run = Measured(relayed=args.relayed)
                await relay_throughput(store, dsn, tmp, sim, sim_pid, run)
                if run.relay_rate > measured.relay_rate:
                    measured.relay_rate, measured.relay_cpu = run.relay_rate, run.relay_cpu
    finally:
        for store in stores:
            await store.close()
    return results


def summary_rows(name: str, rows: int, empty: Measured, full: Measured) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    label = f"outbox {name}, {rows:,} finished rows vs empty"

    def ratio_row(
        what: str, a: float, b: float, unit: str, higher_better: bool, note: str = ""
    ) -> None:
        ratio = b / a if a else float("nan")
        met = ratio >= 0.9 if higher_better else ratio <= 1.1
        goal = ">= 0.9 x empty" if higher_better else "<= 1.1 x empty"
        verdict = f"{ratio:.2f}" + ("" if met else " **missed**")
        out.append(
            {"row": f"{label}: {what}", "goal": goal,
             "measured": f"{b:,.2f} vs {a:,.2f} {unit}{note}", "ratio": verdict}
        )  # fmt: skip

    for what, e, f in (
        ("claim", empty.claim, full.claim),
        ("mark (done / retry)", empty.mark, full.mark),
    ):
        p50 = f" (p50 {percentile(f, 50):.2f} vs {percentile(e, 50):.2f}; {len(f):,} calls)"
        ratio_row(f"{what} p99", percentile(e, 99), percentile(f, 99), "ms", False, p50)
    what = f"relay throughput ({full.relayed:,} rows, 1 relay process)"
    ratio_row(what, empty.relay_rate, full.relay_rate, "deliveries/s", True)
    out.append(
        {"row": f"{label}: due_shops p99 / depth p99 (relay poll / depth gauge)", "goal": "-",
         "measured": f"{percentile(full.due, 99):.2f} / {percentile(full.depth, 99):.1f} ms"
                     f" (empty {percentile(empty.due, 99):.2f} / "
                     f"{percentile(empty.depth, 99):.1f} ms)",
         "ratio": "-"}
    )  # fmt: skip
    cpu = full.relay_cpu
    out.append(
        {"row": f"{label}: CPU during the relay run (full)", "goal": "ceilings",
         "measured": f"relay {cpu.get('relay', 0):.0f}%, simulator {cpu.get('simulator', 0):.0f}%"
                     f" of one core; fill {full.fill_seconds:.0f} s",
         "ratio": "-"}
    )  # fmt: skip
    return out


async def bench(args: argparse.Namespace, tmp: Path) -> list[dict[str, str]]:
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    sim_config = tmp / "simulator.toml"
    sim_config.write_text(config_text(sim, f"sqlite:///{tmp / 'unused.db'}"))
    simulator = Child(
        "simulator",
        [PYTHON, "-m", "bridge", "--log-level", "warning", "simulate", "--port", str(sim_port),
         "--config", str(sim_config)],
        tmp / "simulator.log",
    )  # fmt: skip
    rows: list[dict[str, str]] = []
    if BOOTSTRAP != "127.0.0.1:9":
        await ensure_topics(KafkaConfig(bootstrap_servers=BOOTSTRAP, topic_prefix=PREFIX))
    try:
        wait_http(f"{sim}/_sim/health", simulator.alive)
        for store in args.stores:
            if store == "sqlite":
                empty, full = (f"sqlite:///{tmp / f'{state}.db'}" for state in ("empty", "full"))
                results = await measure_pair(empty, full, args, tmp, sim, simulator.pid)
            else:
                with postgres_server() as server:
                    empty = await fresh_schema(server, "bench_empty")
                    full = await fresh_schema(server, "bench_full")
                    results = await measure_pair(empty, full, args, tmp, sim, simulator.pid)
            rows += summary_rows(store, args.rows, *results)
    finally:
        simulator.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200,000 finished rows")
    parser.add_argument("--rows", type=int, help="finished rows (default 1,000,000)")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite,postgres")
    add_json_flag(parser)
    args = parser.parse_args()
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.relayed = RELAYED  # a shorter run is mostly the relay's start-up, at ~2,000/s
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if unknown := set(args.stores) - {"sqlite", "postgres"}:
        parser.error(f"unknown store(s): {', '.join(sorted(unknown))}")
    before = load_average()
    command = "python bench/outbox_scale.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as folder:
        rows = run(bench(args, Path(folder)))
    after = load_average()
    out = [f"$ {command.strip()}", ""]
    out += [f"{name}: {value}" for name, value in machine_facts()]
    out += [f"load average: {before} → {after}", ""]
    out += table(["row", "goal", "measured", "ratio"], [list(r.values()) for r in rows])
    sys.stdout.write("\n".join(out) + "\n")
    write_summary(args.json, "outbox_scale", rows, load_before=before, load_after=after)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
