"""Inventory-sync benchmark (issue 8): a sale in one shop until every other member is written,
with real ``simulate --webhooks-to``, ``ingress``, ``consume inventory-sync`` and ``relay``
processes (see ``stack.py``).

    python bench/sync.py [--quick] [--json FILE]

Rows: (a) sale → last other member written, p50/p99 over 200 sales (``--quick``: 40), one sale
every 0.5 s rotating over the three shops; (b) a burst of 1,000 sales of 1 on one shop of a
3-member group: PUTs made and the time from the last sale to convergence; (c) 100 groups x 3
members, 20 sales/s spread over them for 20 s (``--quick``: 5 s): convergence lag p99 (a sale has
converged once every member of its group is at or below the pool after it, polled every 50 ms)
and PUTs per sale. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import random
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cpu import CpuMeter
from loadgen import percentile
from procs import log
from report import add_json_flag, load_average, machine_facts, table, write_summary
from stack import (
    BENTO,
    CB_SHOPS,
    SHOPS,
    Stack,
    group_id,
    product,
    running_stack,
    sync_groups_set,
    sync_groups_show,
    variant,
)

from bridge.config import load_config
from consumers.inventory_sync.cli import cmd_set

A_GROUP, BURST_GROUP, FIRST_C = 0, 1, 2
QTY = {A_GROUP: 1_000, BURST_GROUP: 2_000}
C_QTY = 1_000


@dataclass(frozen=True, slots=True)
class Sizes:
    sales: int
    burst: int
    c_groups: int
    c_rate: float
    c_seconds: float

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        return cls(40 if quick else 200, 1_000, 100, 20.0, 5.0 if quick else 20.0)


@dataclass(slots=True)
class Row:
    row: str
    goal: str
    measured: str
    verdict: str

    def cells(self) -> list[str]:
        return [self.row, self.goal, self.measured, self.verdict]


def verdict(measured: float, goal: float, unit: str = "") -> str:
    """``met`` or how far over the goal (lower is better), with the ratio measured / goal."""
    ratio = measured / goal if goal else float("inf")
    if measured == float("inf"):
        return "**missed** (never)"
    if measured <= goal:
        return f"met ({ratio:.2f} of goal)"
    return f"**missed** by {measured - goal:.2f}{unit} ({ratio:.1f}x the goal)"


class Sim:
    """The simulator's /_sim API, with a cursor over its request log."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.cursor = 0

    async def stock(self) -> dict[str, dict[str, int]]:
        response = await self.http.get("/_sim/stock")
        response.raise_for_status()
        return {shop: doc["variants"] for shop, doc in response.json().items()}

    async def puts_since_cursor(self) -> list[dict[str, Any]]:
        """Applied PUTs logged since the cursor; moves the cursor to the newest entry."""
        response = await self.http.get("/_sim/requests", params={"since": self.cursor})
        response.raise_for_status()
        entries = response.json()
        if entries:
            self.cursor = entries[-1]["seq"]
        return [e for e in entries if e["method"] == "PUT" and 200 <= e["status"] < 300]

    async def webhooks(self) -> str:
        """The simulator's webhook counters (sent to the ingress, failed, dropped)."""
        response = await self.http.get("/_sim/webhooks")
        response.raise_for_status()
        doc = response.json()
        return f"sent {doc['sent']}, failed {doc['failed']}, dropped {doc['dropped']}"

    async def skip_log(self) -> None:
        await self.puts_since_cursor()

    async def sale(self, shop: str, group: int, quantity: int = 1) -> None:
        doc = {"shop": shop, "variant": variant(shop, group), "quantity": quantity}
        response = await self.http.post("/_sim/sale", json=doc)
        response.raise_for_status()


def members_at(stock: dict[str, dict[str, int]], group: int) -> list[int]:
    return [stock[shop].get(variant(shop, group), -1) for shop in SHOPS]


# -- set-up ---------------------------------------------------------------------------------------


async def seed(sim: Sim, quantities: dict[int, int]) -> None:
    for shop in SHOPS:
        doc: dict[str, Any] = {
            "shop": shop,
            "variants": {variant(shop, g): q for g, q in quantities.items()},
        }
        if shop != BENTO:
            doc["products"] = {variant(shop, g): product(shop, g) for g in quantities}
        (await sim.http.post("/_sim/stock", json=doc)).raise_for_status()


async def set_pools(stack: Stack, quantities: dict[int, int]) -> None:
    """``sync-groups set`` per group: the CLI for the first two, the same command function
    in-process for the rest (a hundred interpreter start-ups would take minutes)."""
    config = load_config(str(stack.config_path))
    for g, q in quantities.items():
        if g < FIRST_C:
            await asyncio.to_thread(sync_groups_set, stack.config_path, group_id(g), q)
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # the table owns stdout
                await cmd_set(config, argparse.Namespace(group=group_id(g), quantity=q))


async def wait_settled(stack: Stack, sim: Sim, quantities: dict[int, int], timeout: float) -> None:
    """Until every pool is its quantity, nothing is un-echoed and every member shows it."""
    deadline = time.monotonic() + timeout
    wanted = {group_id(g): q for g, q in quantities.items()}
    while True:
        views = await asyncio.to_thread(sync_groups_show, stack.config_path)
        pools_ok = all(
            v["pool"] == wanted[v["group"]] and not any(m["unechoed"] for m in v["members"])
            for v in views
            if v["group"] in wanted
        )
        stock = await sim.stock()
        stock_ok = all(members_at(stock, g) == [q] * len(SHOPS) for g, q in quantities.items())
        if pools_ok and stock_ok:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not settled after {timeout:.0f}s (pools {pools_ok})")
        await asyncio.sleep(0.5)


# -- phases ---------------------------------------------------------------------------------------


async def phase_a(sim: Sim, sales: int) -> list[float]:
    """Latency of each sale: sent → last PUT to another member applied at the simulator."""
    latencies: list[float] = []
    pool = QTY[A_GROUP]
    await sim.skip_log()
    for n in range(sales):
        slot = time.monotonic() + 0.5
        shop = SHOPS[n % len(SHOPS)]
        others = [s for s in SHOPS if s != shop]
        sent = time.time()
        await sim.sale(shop, A_GROUP)
        pool -= 1
        deadline = time.monotonic() + 15
        while True:
            stock = await sim.stock()
            if all(stock[s][variant(s, A_GROUP)] == pool for s in others):
                seen = time.time()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"(a) sale {n} not propagated after 15 s: {stock}")
            await asyncio.sleep(0.005)
        puts = [p for p in await sim.puts_since_cursor() if p["shop"] in others]
        latencies.append((max(p["t"] for p in puts) if puts else seen) - sent)
        await asyncio.sleep(max(0.0, slot - time.monotonic()))
    return latencies


async def phase_b(sim: Sim, count: int) -> tuple[int, float, float]:
    """(PUTs, seconds of the burst, seconds from the last sale to the last member written)."""
    await sim.skip_log()
    shop = CB_SHOPS[0]
    numbers = iter(range(count))
    started = time.time()

    async def worker() -> None:
        for _ in numbers:
            await sim.sale(shop, BURST_GROUP)

    await asyncio.gather(*(worker() for _ in range(8)))
    last_sale = time.time()
    final = QTY[BURST_GROUP] - count
    deadline = time.monotonic() + 120
    while members_at(await sim.stock(), BURST_GROUP) != [final] * len(SHOPS):
        if time.monotonic() > deadline:
            raise RuntimeError("(b) the burst did not converge in 120 s")
        await asyncio.sleep(0.01)
    converged = time.time()
    await asyncio.sleep(1.0)  # writes still in flight would count as calls of the burst
    wanted = {variant(s, BURST_GROUP) for s in SHOPS}
    puts = [p for p in await sim.puts_since_cursor() if p["path"].rsplit("/", 1)[-1] in wanted]
    puts = [p for p in puts if p["t"] <= converged]
    last_put = max((p["t"] for p in puts), default=converged)
    return len(puts), last_sale - started, max(0.0, last_put - last_sale)


@dataclass(slots=True)
class Spread:
    """Phase (c): convergence lags, the sales that never converged, units lost, PUTs."""

    lags: list[float]
    sales: int
    unconverged: int
    lost_units: int
    puts: int


async def phase_c(sim: Sim, sizes: Sizes, quiet: float = 10.0) -> Spread:
    """Open-loop sales over the groups; a sale has converged once every member of its group is at
    or below the pool after it. Ends when all have, or nothing converged for ``quiet`` seconds."""
    await sim.skip_log()
    groups = list(range(FIRST_C, FIRST_C + sizes.c_groups))
    rng = random.Random(8)
    pools = {g: C_QTY for g in groups}
    pending: list[tuple[float, int, int]] = []  # (sent, group, pool after)
    lags: list[float] = []
    total = int(sizes.c_rate * sizes.c_seconds)
    done = asyncio.Event()
    stock: dict[str, dict[str, int]] = {}

    async def poll() -> None:
        nonlocal stock
        progress = time.monotonic()
        while not (done.is_set() and (not pending or time.monotonic() - progress > quiet)):
            stock = await sim.stock()
            seen = time.time()
            for item in list(pending):
                sent, g, after = item
                if all(q <= after for q in members_at(stock, g)):
                    lags.append(seen - sent)
                    pending.remove(item)
                    progress = time.monotonic()
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll())
    start = time.monotonic()
    sales = []
    for n in range(total):
        await asyncio.sleep(max(0.0, start + n / sizes.c_rate - time.monotonic()))
        g, shop = rng.choice(groups), rng.choice(SHOPS)
        pools[g] -= 1
        pending.append((time.time(), g, pools[g]))
        sales.append(asyncio.create_task(sim.sale(shop, g)))
    await asyncio.gather(*sales)
    done.set()
    await poller
    lost = sum(max(0, max(members_at(stock, g)) - pools[g]) for g in groups)
    puts = len(await sim.puts_since_cursor())
    return Spread(lags, total, len(pending), lost, puts)


async def bench(stack: Stack, sizes: Sizes, phases: str) -> list[Row]:
    quantities = {**QTY, **{g: C_QTY for g in range(FIRST_C, FIRST_C + sizes.c_groups)}}
    async with httpx.AsyncClient(base_url=stack.sim, timeout=30.0) as http:
        sim = Sim(http)
        log(f"seeding {len(quantities)} groups and setting their pools")
        await seed(sim, quantities)
        await set_pools(stack, quantities)
        await wait_settled(stack, sim, quantities, timeout=180)

        rows: list[Row] = []
        if "a" in phases:
            rows += await run_a(sim, sizes)
        if "b" in phases:
            rows += await run_b(sim, sizes)
        if "c" in phases:
            rows += await run_c(stack, sim, sizes)
        rows.append(Row("simulator webhooks to the ingress (whole run)", "failed 0, dropped 0",
                        await sim.webhooks(), "-"))  # fmt: skip
    return rows


async def run_a(sim: Sim, sizes: Sizes) -> list[Row]:
    log(f"(a) {sizes.sales} sales, one every 0.5 s")
    lat = await phase_a(sim, sizes.sales)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    return [
        Row(f"(a) sale → every member, p50 ({len(lat)} sales)", "≤ 0.3 s", f"{p50:.3f} s",
            verdict(p50, 0.3, " s")),
        Row("(a) sale → every member, p99", "≤ 1 s", f"{p99:.3f} s", verdict(p99, 1.0, " s")),
    ]  # fmt: skip


async def run_b(sim: Sim, sizes: Sizes) -> list[Row]:
    log(f"(b) burst of {sizes.burst} sales on one shop")
    puts, burst_s, converge = await phase_b(sim, sizes.burst)
    share = 100 * puts / sizes.burst
    return [
        Row(f"(b) burst of {sizes.burst:,} sales ({burst_s:.1f} s): API calls", "≤ 3 %",
            f"{puts} PUTs = {share:.1f} %", verdict(share, 3.0, " points")),
        Row("(b) last change → converged", "≤ 1.5 s", f"{converge:.2f} s",
            verdict(converge, 1.5, " s")),
    ]  # fmt: skip


async def run_c(stack: Stack, sim: Sim, sizes: Sizes) -> list[Row]:
    log(f"(c) {sizes.c_groups} groups, {sizes.c_rate:g} sales/s for {sizes.c_seconds:g} s")
    meter = CpuMeter({"simulator": stack.children["simulator"].pid})
    meter.start()
    c = await phase_c(sim, sizes)
    cpu = meter.stop()
    # a sale that never converged has an infinite lag
    lags = c.lags + [float("inf")] * c.unconverged
    c99 = percentile(lags, 99)
    shown = "never" if c99 == float("inf") else f"{c99:.2f} s"
    p99_note = f"{shown} (p50 {percentile(lags, 50):.2f} s; {c.unconverged} never converged)"
    per_sale = c.puts / c.sales
    return [
        Row(f"(c) {sizes.c_groups} groups x 3, {sizes.c_rate:g} sales/s: convergence p99",
            "≤ 1 s (as (a))", p99_note, verdict(c99, 1.0, " s")),
        Row("(c) units lost (final level above the true pool, summed)", "0",
            f"{c.lost_units} units in {c.unconverged} sales",
            "met" if c.lost_units == 0 else "**missed**"),
        Row("(c) API calls per sale", "≤ 2 (one per other member)",
            f"{per_sale:.2f} ({c.puts} PUTs / {c.sales} sales)", verdict(per_sale, 2.0)),
        Row("(c) simulator CPU (its own ceiling)", "-",
            f"{cpu.get('simulator', 0):.0f}% of one core", "-"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sales, a 5 s phase (c)")
    parser.add_argument("--phases", default="abc", help="which rows to measure (default abc)")
    add_json_flag(parser)
    args = parser.parse_args()
    sizes = Sizes.of(args.quick)
    command = "python bench/sync.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    before = load_average()
    with (
        tempfile.TemporaryDirectory(prefix="bench-sync-") as folder,
        running_stack(Path(folder), groups=FIRST_C + sizes.c_groups) as stack,
    ):
        rows = asyncio.run(bench(stack, sizes, args.phases))
    after = load_average()
    out = [f"$ {command.strip()}", ""]
    out += [f"{name}: {value}" for name, value in machine_facts()]
    out += [f"load average before: {before}; after: {after}", ""]
    out += table(["row", "goal", "measured", "verdict"], [r.cells() for r in rows])
    sys.stdout.write("\n".join(out) + "\n")
    summary = [{"row": r.row, "goal": r.goal, "measured": r.measured, "ratio": r.verdict}
               for r in rows]  # fmt: skip
    write_summary(args.json, "sync", summary, load_before=before, load_after=after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
