"""``commerce-bridge dev``: the whole product on one machine, with a live view of the stock.

Starts (or reuses, with ``KAFKA_BOOTSTRAP_SERVERS``) a local Kafka broker and runs, in this
process: the platform simulator (three shops, see :mod:`bridge.devtools.dev_config`), the ingress
and its ops app, both consumers (commands and inventory-sync), and the relay. Every sync group is
recounted at start so every shop starts equal; then a stream of sales and restocks
(:mod:`bridge.devtools.dev_traffic`) runs and a table (:mod:`bridge.devtools.dev_screen`) shows
each sale reach every shop. Ctrl-C (or SIGTERM) stops everything cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.live import Live

from bridge import log
from bridge.config import Config, load_config
from bridge.devtools import dev_config
from bridge.devtools.dev_config import GROUPS, START_POOL
from bridge.devtools.dev_screen import (
    Endpoints,
    EventRate,
    Lines,
    Snapshot,
    header,
    outbox_by_status,
    plain_console,
    render,
)
from bridge.devtools.dev_traffic import Journal, Simulator, Traffic, bridge_views, set_pool, settled
from bridge.devtools.kafka.local import LocalKafka
from bridge.devtools.simulator.app import create_app as create_simulator
from bridge.devtools.simulator.options import SimulatorOptions
from bridge.errors import BridgeError
from bridge.ingress.app import create_app as create_ingress
from bridge.kafka.topics import Topics, client_options, ensure_topics
from bridge.outbox.store import OutboxStore, open_store
from bridge.serve import free_port, run, running_server, stop_on_signals
from consumers import commands, runtime
from consumers.inventory_sync.app import InventorySyncApp
from consumers.inventory_sync.directory import Directory

ONCE_SALE = (GROUPS[0].id, GROUPS[0].members[1], 2)  # --once: a sale of 2 at cb-tainan
START_TIMEOUT = 60.0  # for every part to start (a first local Kafka start is slow)
SETTLE_TIMEOUT = 20.0  # for the shops and the bridge to agree after a change


class System:
    """The running parts a redraw or a change needs."""

    def __init__(
        self, config: Config, store: OutboxStore, sim: Simulator, where: Endpoints
    ) -> None:
        self.config = config
        self.store = store
        self.sim = sim
        self.where = where
        self.directory = Directory.from_config(config)
        self.rate = EventRate()
        self.journal = Journal()

    async def snapshot(self) -> Snapshot:
        return Snapshot(
            stock=await self.sim.stock(),
            views=await bridge_views(self.store, self.directory),
            outbox=outbox_by_status(await self.store.counts()),
            events_per_s=self.rate.per_second(),
            events_total=self.rate.total,
        )

    async def until_settled(self, timeout: float) -> bool:
        """Wait until the bridge believes every member is at its target, no echo outstanding."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if settled((await bridge_views(self.store, self.directory)).values()):
                return True
            await asyncio.sleep(0.05)
        return False

    async def start_equal(self, lines: Lines) -> bool:
        """Recount every group to :data:`START_POOL` (as ``sync-groups set``) and wait for it."""
        for g in GROUPS:
            await set_pool(self.store, self.directory, g.id, START_POOL)
            lines.say(f"recount {g.id}: pool {START_POOL}, a write to every shop")
        for g in GROUPS:
            if not await self.sim.all_at(g, START_POOL, SETTLE_TIMEOUT):
                return False
        return await self.until_settled(SETTLE_TIMEOUT)


async def tail(config: Config, rate: EventRate) -> None:
    """Count every record that lands on the bridge's topics (the events/s of the screen)."""
    consumer = AIOKafkaConsumer(
        *Topics(config.kafka.topic_prefix).all(),
        **client_options(config.kafka),
        group_id=f"bridge-dev-tail-{secrets.token_hex(4)}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            rate.add(sum(len(records) for records in batches.values()))
    finally:
        await consumer.stop()


async def live_screen(system: System, console: Console, stop: asyncio.Event) -> None:
    """Redraw the table every second on a terminal; elsewhere print each change once."""
    if not console.is_terminal:
        console.print(header(system.where), soft_wrap=True)
        await _change_lines(system, Lines(console), stop)
        return
    first = render(system.where, await system.snapshot(), system.journal)
    with Live(first, console=console, auto_refresh=False) as live:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            live.update(render(system.where, await system.snapshot(), system.journal))
            live.refresh()


async def _change_lines(system: System, lines: Lines, stop: asyncio.Event) -> None:
    told: set[tuple[str, float]] = set()
    while not stop.is_set():
        for change in list(system.journal.changes):
            key = (change.group, change.started)
            if key not in told and (change.spread is not None or change.gave_up):
                told.add(key)
                lines.say(f"{change.group}: {change.words()}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def once(system: System, lines: Lines, console: Console) -> int:
    """One sale; wait until it reached every shop and the bridge settled; the final table."""
    group_id, member, quantity = ONCE_SALE
    change = await Traffic(system.sim, system.store, system.directory, system.journal).sale(
        member, group_id, quantity
    )
    calm = await system.until_settled(SETTLE_TIMEOUT)
    snap = await system.snapshot()
    console.print(render(system.where, snap, system.journal))
    if change is None or change.spread is None or not calm:
        lines.say(f"{group_id}: the sale did not reach every shop")
        return 1
    lines.say(f"{group_id}: {change.words()}")
    g = dev_config.group(group_id)
    at_shops = " · ".join(
        f"{m.label}={snap.stock[m.shop]['variants'][m.variant]}" for m in g.members
    )
    lines.say(f"{group_id}: pool {snap.views[group_id]['pool']}; at the shops: {at_shops}")
    return 0


async def dev(args: argparse.Namespace, workdir: Path, console: Console) -> int:
    stop = asyncio.Event()
    lines = Lines(console)
    with stop_on_signals(stop):
        bootstrap, kafka = await start_kafka(workdir, args.kafka_port, lines)
        try:
            return await _run_system(args, workdir, bootstrap, stop, console)
        finally:
            if kafka is not None:
                await asyncio.to_thread(kafka.stop)
                lines.say("kafka stopped")


async def start_kafka(workdir: Path, port: int, lines: Lines) -> tuple[str, LocalKafka | None]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        lines.say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={external}")
        return external, None
    kafka = LocalKafka(workdir / "kafka", port=port, progress=sys.stderr)
    lines.say("kafka: starting a local broker (the first run fetches it from Maven Central)…")
    bootstrap = await asyncio.to_thread(kafka.start)
    lines.say(f"kafka ready at {bootstrap}")
    return bootstrap, kafka


async def _run_system(
    args: argparse.Namespace, workdir: Path, bootstrap: str, stop: asyncio.Event, console: Console
) -> int:
    lines = Lines(console)
    sim_port = args.simulator_port or free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    ingress_port = args.port or free_port()
    ingress_url = f"http://127.0.0.1:{ingress_port}"
    config_file = workdir / "bridge.toml"
    config_file.write_text(dev_config.dev_config_text(workdir, bootstrap, sim_url))
    config = load_config(config_file, {})
    created = await ensure_topics(config.kafka, max_body_bytes=config.ingress.max_body_bytes)
    lines.say(f"topics: {len(created)} created, config in {config_file}")
    options = SimulatorOptions(webhooks_to=ingress_url, initial_stock=dev_config.initial_stock())
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(config.outbox.dsn)
        stack.push_async_callback(store.close)
        await store.migrate()
        await stack.enter_async_context(
            running_server(create_simulator(config, options=options), port=sim_port)
        )
        ingress = create_ingress(config)
        ops_url = await stack.enter_async_context(running_server(ingress.state.ops))
        await stack.enter_async_context(running_server(ingress, port=ingress_port))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        mode = "once" if args.once else "off" if args.no_traffic else "stream"
        where = Endpoints(ingress_url, ops_url, sim_url, str(config_file), mode)
        system = System(config, store, Simulator(http, sim_url), where)
        tasks = _Tasks(stop)
        stack.push_async_callback(tasks.close)
        await _start_parts(tasks, system, stop)
        lines.say("simulator, ingress, both consumers and the relay are running")
        if not await system.start_equal(lines):
            lines.say("the shops did not reach the starting pool in time")
            return 1
        if args.once:
            return await once(system, lines, plain_console(sys.stdout))
        traffic = Traffic(system.sim, store, system.directory, system.journal)
        tasks.start("watch", traffic.watch(stop), background=True)
        if not args.no_traffic:
            tasks.start("traffic", traffic.run(stop), background=True)
        await live_screen(system, console, stop)
    return 0 if tasks.failed is None else 1


async def _start_parts(tasks: _Tasks, system: System, stop: asyncio.Event) -> None:
    config, prefix = system.config, system.config.kafka.topic_prefix
    tasks.start("tail", tail(config, system.rate), background=True)
    started = {name: asyncio.Event() for name in ("commands", "inventory-sync")}
    apps: dict[str, Any] = {
        # group ids carry the topic prefix: two dev runs on one broker never share a group
        "commands": commands.CommandsApp(group_id=f"{prefix}.bridge-commands"),
        "inventory-sync": InventorySyncApp(group_id=f"{prefix}.inventory-sync"),
    }
    for name, app in apps.items():
        tasks.start(name, runtime.run(app, config, stop, started[name]))
    tasks.start("relay", _relay(config, stop))
    await tasks.wait_for(*started.values())


async def _relay(config: Config, stop: asyncio.Event) -> None:
    from bridge.relay.cli import run_relay

    await run_relay(config, stop, owner="bridge-dev")


class _Tasks:
    """Background parts of the dev system; any of them failing stops the whole thing."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.background: set[str] = set()  # cancelled at close; the others end on ``stop``
        self.failed: BaseException | None = None

    def start(self, name: str, coro: Awaitable[Any], *, background: bool = False) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: self._done(name, t))
        self.tasks[name] = task
        if background:
            self.background.add(name)

    def _done(self, name: str, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.stop.is_set():
            return
        self.failed = task.exception() or RuntimeError(f"{name} stopped unexpectedly")
        log.get_logger("bridge.devtools.dev").error(
            "component_failed", component=name, error=str(self.failed)
        )
        self.stop.set()

    async def wait_for(self, *events: asyncio.Event) -> None:
        """Wait until every event is set; a component failing (``stop``) or a minute is an error."""
        deadline = time.monotonic() + START_TIMEOUT
        for event in events:
            left = deadline - time.monotonic()
            waiters = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stop.wait())}
            _, pending = await asyncio.wait(
                waiters, timeout=max(left, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
            for w in pending:
                w.cancel()
        if self.stop.is_set() or not all(e.is_set() for e in events):
            raise BridgeError(f"commerce-bridge dev: a component failed to start: {self.failed}")

    async def close(self) -> None:
        self.stop.set()
        for name in self.background:
            self.tasks[name].cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev", help="run the whole system locally and watch the stock stay in step")
    p.add_argument("--dir", default=".bridge-dev", help="work dir: config, outbox, Kafka data")
    p.add_argument("--port", type=int, default=8080, help="ingress port (0: any free port)")
    p.add_argument("--simulator-port", type=int, default=8081, help="simulator port (0: any)")
    p.add_argument("--kafka-port", type=int, default=0, help="local Kafka port (0: any free)")
    p.add_argument("--no-traffic", action="store_true", help="no sales/restocks: make your own")
    p.add_argument(
        "--once",
        action="store_true",
        help="make one sale, wait until it reached every shop, print the table, stop",
    )
    p.add_argument("--verbose", action="store_true", help="show the components' info logs")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    log.configure("info" if args.verbose else "warning", "console")
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    return run(dev(args, workdir, Console()))
