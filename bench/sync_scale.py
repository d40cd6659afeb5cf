"""Inventory-sync consumer at scale (issue 10): 10,000 sync groups against 100, one consumer
process, on SQLite and on PostgreSQL.

    python bench/sync_scale.py [--quick] [--groups 10000] [--events N] [--stores sqlite,postgres]

**What runs.** For each store and group count: a fresh outbox database, a configuration of
``GROUPS`` sync groups of three members (two Cyberbiz variants, one BentoWeb variant, as
``stack.py`` configures them), and a backlog of ``--events`` canonical ``commerce.variant.updated``
events on a fresh ``commerce.variants`` topic (3 partitions), published beforehand with the
project's ``KafkaPublisher`` (the ingress is left out: this isolates the consumer). Each event is
an observed level of a random member of a group, the groups in shuffled rounds (no group twice
within one round, so no batch coalesces two changes of a group in either case). Before the
measured backlog every group had its first contact (one level per group, consumed by a first
worker run of the same consumer group), so every measured event is an external change of an
existing pool that queues set-stock writes for the other members: the same work per event
whatever the group count. The baseline is 1,000 groups, not 100: it has more groups than a
batch has records, so its batches are the same work as those of 10,000 groups, and what
differs is only how many groups exist.

Then one consumer process (``python bench/sync_scale.py _worker``) runs the real consumer runtime
with the real ``InventorySyncApp`` (``consumers.runtime.Runtime``, as ``commerce-bridge consume
inventory-sync`` does), its store wrapped so that each batch's transaction (``app.handle`` through
the commit) is timed, until it handled the backlog. Reported: events/s from the first batch to
the last, the p99 of the per-batch transaction time, the batch size, and the time from the
worker's start to its first batch (configuration loading and the group directory for that many
groups). The goal: 10,000 groups within 10% of 100 groups (events/s, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from loadgen import percentile
from pgserver import fresh_schema, postgres_server
from procs import answer, log
from report import add_json_flag, load_average, machine_facts, table, write_summary
from stack import BENTO, CB_SHOPS, SHOPS, config_text, variant

from bridge.config import Config, load_config
from bridge.devtools.kafka.local import LocalKafka
from bridge.kafka.publisher import KafkaPublisher
from bridge.kafka.topics import Topics, ensure_topics
from bridge.log import configure as configure_logging
from bridge.outbox import OutboxStore, OutboxTx, open_store
from consumers.inventory_sync.app import InventorySyncApp
from consumers.runtime import Runtime, RuntimeOptions

PYTHON = sys.executable
HERE = str(Path(__file__).resolve())
SMALL = 1_000  # far more groups than a batch has records, as 10,000: only the count differs


# -- the worker (one consumer process) ----------------------------------------------------------


class TimedStore:
    """The real store; each ``transaction()`` (one batch: handle + commit) is timed."""

    def __init__(self, store: OutboxStore, batches: list[tuple[float, float, int]]) -> None:
        self._store = store
        self.batches = batches

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[OutboxTx]:
        started = time.perf_counter()
        async with self._store.transaction() as tx:
            yield tx
        self.batches.append((started, time.perf_counter() - started, 0))


class CountingApp(InventorySyncApp):
    """The app as it is; counts the records handed to it and stops once all came."""

    def __init__(self, expected: int, stop: asyncio.Event, sizes: list[int], group: str) -> None:
        super().__init__(group_id=group)
        self.expected, self.seen, self.stop_event, self.sizes = expected, 0, stop, sizes

    async def handle(self, tx: OutboxTx, records: Sequence[Any]) -> Sequence[Any]:
        outgoing = await super().handle(tx, records)
        self.sizes.append(len(records))
        self.seen += len(records)
        if self.seen >= self.expected:
            self.stop_event.set()
        return outgoing


async def worker(config_path: str, expected: int, group: str) -> dict[str, Any]:
    started = time.perf_counter()
    configure_logging("warning", "json", sys.stderr)  # production level; stdout is the answer
    config = load_config(config_path)
    loaded = time.perf_counter() - started
    batches: list[tuple[float, float, int]] = []
    sizes: list[int] = []
    stop = asyncio.Event()
    app = CountingApp(expected, stop, sizes, group)

    async def opener(dsn: str) -> OutboxStore:
        store: Any = TimedStore(await open_store(dsn), batches)
        return store  # type: ignore[no-any-return]

    options = RuntimeOptions()
    runtime = Runtime(app, config, options=options, store_opener=opener)
    await asyncio.wait_for(runtime.run(stop), timeout=900)
    first, last = batches[0], batches[-1]
    return {
        "config_seconds": loaded,
        "to_first_batch": first[0] - started,
        "span": last[0] + last[1] - first[0],
        "seen": app.seen,
        "batch_ms": [1000 * b[1] for b in batches],
        "sizes": sizes,
    }


# -- the driver ---------------------------------------------------------------------------------


def level_event(shop: str, group: int, level: int, now: float) -> tuple[bytes, bytes]:
    value = {
        "shop": shop, "type": "commerce.variant.updated", "variant_id": variant(shop, group),
        "product_id": None, "inventory_quantity": level, "previous_quantity": None,
        "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }  # fmt: skip
    return f"{shop}:{variant(shop, group)}".encode(), orjson.dumps(value)


async def publish_backlog(config: Config, groups: int, events: int, seed: int | None) -> None:
    """``events`` observed levels of random members, published with the project's publisher;
    ``seed`` None: one level of 50 per group (its first contact), in group order."""
    rng = random.Random(seed)  # the load's shape, reproducible
    topic = Topics.from_config(config.kafka).variants
    publisher = KafkaPublisher(config.kafka, client_id="bench-sync-feed")
    await publisher.start(wait=True)
    try:
        now = time.time()
        pending: set[asyncio.Task[Any]] = set()
        order: list[int] = []
        while len(order) < events:  # shuffled rounds over every group: none twice in a batch
            order += rng.sample(range(groups), groups)
        for n, group in enumerate(order[:events]):
            if seed is None:
                key, value = level_event(CB_SHOPS[0], n, 50, now)
            else:
                shop = rng.choice([*CB_SHOPS, BENTO])
                key, value = level_event(shop, group, rng.randrange(40, 60), now)
            headers = [("ce_type", b"commerce.variant.updated"), ("ce_id", f"bench-{n}".encode())]
            pending.add(asyncio.create_task(publisher.publish(topic, key, value, headers, 30.0)))
            if len(pending) >= 500:
                _done, pending = await asyncio.wait(pending)
        if pending:
            await asyncio.wait(pending)
    finally:
        await publisher.stop()


def run_worker(config: Path, events: int, group: str) -> dict[str, Any]:
    argv = [PYTHON, HERE, "_worker", str(config), str(events), group]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1200, env=env)
    if done.returncode:
        raise RuntimeError(f"worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


async def one_case(bootstrap: str, dsn: str, groups: int, events: int, tmp: Path) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    path = tmp / f"sync-{prefix}.toml"
    path.write_text(config_text("http://127.0.0.1:9", dsn, bootstrap, prefix, groups))
    config = load_config(str(path))
    await ensure_topics(config.kafka)
    store = await open_store(dsn)
    try:
        await store.migrate()
    finally:
        await store.close()
    group = f"bench-sync-{uuid.uuid4().hex[:6]}"
    log(f"{groups:,} groups on {dsn.split(':', 1)[0]}: first contact of every group")
    await publish_backlog(config, groups, groups, seed=None)
    seeded = await asyncio.to_thread(run_worker, path, groups, group)
    log(f"publishing {events:,} events, consuming them in one process")
    await publish_backlog(config, groups, events, seed=groups)
    measured = await asyncio.to_thread(run_worker, path, events, group)
    return {**measured, "to_first_batch": seeded["to_first_batch"]}


def rows_for(
    store: str, small: dict[str, Any], big: dict[str, Any], groups: int
) -> list[dict[str, str]]:
    label = f"inventory-sync {groups:,} groups vs {SMALL:,}, {store}"
    rate_small, rate_big = small["seen"] / small["span"], big["seen"] / big["span"]
    p99_small, p99_big = percentile(small["batch_ms"], 99), percentile(big["batch_ms"], 99)
    rate_ratio, p99_ratio = rate_big / rate_small, p99_big / p99_small
    size = sum(big["sizes"]) / max(1, len(big["sizes"]))
    return [
        {"row": f"{label}: events/s, 1 process", "goal": f">= 0.9 x {SMALL:,} groups",
         "measured": f"{rate_big:,.0f} vs {rate_small:,.0f} events/s",
         "ratio": f"{rate_ratio:.2f}" + ("" if rate_ratio >= 0.9 else " **missed**")},
        {"row": f"{label}: p99 per-batch transaction", "goal": f"<= 1.1 x {SMALL:,} groups",
         "measured": f"{p99_big:,.1f} vs {p99_small:,.1f} ms (mean batch {size:.0f} records)",
         "ratio": f"{p99_ratio:.2f}" + ("" if p99_ratio <= 1.1 else " **missed**")},
        {"row": f"{label}: start to first batch (config + directory)", "goal": "-",
         "measured": f"{big['to_first_batch']:.2f} vs {small['to_first_batch']:.2f} s"
                     f" (config load {big['config_seconds']:.2f} s)",
         "ratio": "-"},
    ]  # fmt: skip


async def bench(args: argparse.Namespace, tmp: Path, bootstrap: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for store in args.stores:
        results = []
        for groups in (SMALL, args.groups):
            if store == "sqlite":
                dsn = f"sqlite:///{tmp / f'sync-{groups}.db'}"
                results.append(await one_case(bootstrap, dsn, groups, args.events, tmp))
            else:
                with postgres_server() as server:
                    dsn = await fresh_schema(server, f"sync_{groups}")
                    results.append(await one_case(bootstrap, dsn, groups, args.events, tmp))
        small, big = results
        rows += rows_for(store, small, big, args.groups)
    return rows


def main() -> int:
    if sys.argv[1:2] == ["_worker"]:
        answer(asyncio.run(worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 events per case")
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--events", type=int, help="events per case (default 20,000)")
    parser.add_argument("--stores", default="sqlite,postgres")
    add_json_flag(parser)
    args = parser.parse_args()
    args.events = args.events or (3_000 if args.quick else 20_000)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    before = load_average()
    command = "python bench/sync_scale.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-sync-scale-") as folder:
        tmp = Path(folder)
        broker: LocalKafka | None = None
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not bootstrap:
            log("starting a local Kafka broker")
            broker = LocalKafka(tmp / "kafka")
            bootstrap = broker.start()
        try:
            rows = asyncio.run(bench(args, tmp, bootstrap))
        finally:
            if broker is not None:
                broker.stop()
    after = load_average()
    out = [f"$ {command.strip()}", ""]
    out += [f"{name}: {value}" for name, value in machine_facts()]
    out += [f"shops: {', '.join(SHOPS)}; {args.events:,} events per case", ""]
    out += [f"load average: {before} → {after}", ""]
    out += table(["row", "goal", "measured", "ratio"], [list(r.values()) for r in rows])
    sys.stdout.write("\n".join(out) + "\n")
    write_summary(args.json, "sync_scale", rows, load_before=before, load_after=after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
