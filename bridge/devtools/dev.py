"""``commerce-bridge dev``: the whole product on one machine, for trying it out.

Starts (or reuses, with ``KAFKA_BOOTSTRAP_SERVERS``) a local Kafka broker, creates the topics,
runs the platform simulator, the ingress, the commands consumer and the relay in this process,
sends signed sample webhooks built from the platforms' documented payloads plus sample stock
commands, and prints every record as it lands on Kafka, with the outbox and the simulator's
stock. Ctrl-C (or SIGTERM) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from bridge import log
from bridge.config import Config, load_config
from bridge.devtools.kafka.local import LocalKafka
from bridge.devtools.sign import sign_request
from bridge.devtools.simulator.app import create_app as create_simulator
from bridge.devtools.simulator.options import SimulatorOptions
from bridge.devtools.simulator.state import StockSeed
from bridge.errors import BridgeError
from bridge.ingress.app import create_app as create_ingress
from bridge.kafka.publisher import KafkaPublisher
from bridge.kafka.topics import Topics, client_options, ensure_topics
from bridge.outbox.store import OutboxStore, open_store
from bridge.serve import free_port, run, running_server, stop_on_signals
from consumers import commands, runtime

CB_PRODUCT, CB_VARIANT, BENTO_VARIANT = "1001", "5001", "753758"

# (shop, sample file, event) — the payloads documented by the platforms (../shared/seeds).
SAMPLES = (
    ("cb-taipei", "cyberbiz/order.json", "orders/create"),
    ("cb-taipei", "cyberbiz/variant.json", "variants/update"),
    ("cb-taipei", "cyberbiz/product.json", "products/update"),
    ("bento-bkk", "bentoweb/order.json", "order.paid"),
    ("bento-bkk", "bentoweb/variant.json", "variant.update"),
    ("bento-bkk", "bentoweb/product.json", "product.update"),
)


def sample_bytes(name: str) -> bytes:
    return resources.files("bridge.data").joinpath("samples", *name.split("/")).read_bytes()


def dev_config_text(workdir: Path, bootstrap: str, sim_url: str, pii_key: str) -> str:
    """The example configuration, with shops pointing at the simulator and dev secrets inline."""
    return f"""# Written by `commerce-bridge dev`: a local demo configuration. Secrets are inline
# because they are throwaway dev values; in production use env:NAME (see bridge.example.toml).
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "commerce"
linger_ms = 2

[outbox]
dsn = "sqlite:///{workdir.resolve() / "outbox.db"}"

[relay]
poll_interval = 0.1

[privacy]
mode = "encrypt"
key = "{pii_key}"

[[shops]]
id = "cb-taipei"
platform = "cyberbiz"
api_base = "{sim_url}/cyberbiz/cb-taipei"
api_token = "dev-cb-taipei-token"
webhook_secrets = ["dev-cb-taipei-secret"]
rate_limit = 5.0

[[shops]]
id = "bento-bkk"
platform = "bentoweb"
api_base = "{sim_url}/bentoweb/bento-bkk"
client_id = "dev-bento-bkk"
client_secret = "dev-bento-bkk-client-secret"
webhook_secrets = ["dev-bento-bkk-token"]
rate_limit = 5.0

[[sync_groups]]
id = "tee-black-m"
members = [
  {{ shop = "cb-taipei", product = "{CB_PRODUCT}", variant = "{CB_VARIANT}" }},
  {{ shop = "bento-bkk", variant = "{BENTO_VARIANT}" }},
]
"""


def sample_commands(run_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": f"dev-{run_id}-cb",
            "shop": "cb-taipei",
            "kind": "set_stock",
            "target": {"variant": CB_VARIANT, "product": CB_PRODUCT},
            "payload": {"quantity": 42},
            "idempotency_key": f"dev-{run_id}-cb-42",
        },
        {
            "id": f"dev-{run_id}-bento",
            "shop": "bento-bkk",
            "kind": "set_stock",
            "target": {"variant": BENTO_VARIANT},
            "payload": {"quantity": 42},
            "idempotency_key": f"dev-{run_id}-bento-42",
        },
    ]


@dataclass
class Progress:
    """What `--once` waits for: every sample on Kafka, every sample command delivered.

    The tail may see a record before the sender has its 202, so both sides are kept.
    """

    expected_events: set[str] = field(default_factory=set)
    expected_deliveries: set[str] = field(default_factory=set)
    seen_events: set[str] = field(default_factory=set)
    seen_deliveries: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def saw_event(self, event_id: str) -> None:
        self.seen_events.add(event_id)
        self.changed.set()

    def saw_delivery(self, key: str) -> None:
        self.seen_deliveries.add(key)
        self.changed.set()

    @property
    def complete(self) -> bool:
        return self.expected_events <= self.seen_events and (
            self.expected_deliveries <= self.seen_deliveries
        )


class Screen:
    """The dev command's output: one line per thing that happened."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


async def tail(config: Config, screen: Screen, progress: Progress, ready: asyncio.Event) -> None:
    """Print every record that lands on the bridge's topics."""
    topics = Topics(config.kafka.topic_prefix)
    consumer = AIOKafkaConsumer(
        *topics.all(),
        **client_options(config.kafka),
        group_id=f"bridge-dev-tail-{secrets.token_hex(4)}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)  # pin "latest" before anything is sent
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    screen.say(describe(record, topics, progress))
    finally:
        await consumer.stop()


def describe(record: Any, topics: Topics, progress: Progress) -> str:
    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers}
    key = (record.key or b"").decode("utf-8", "replace")
    short = record.topic.rsplit(".", 1)[-1]
    where = f"  kafka {short:<11} p{record.partition} @{record.offset:<5} {key:<28}"
    try:
        value = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        value = {}
    if record.topic == topics.deliveries and isinstance(value, dict):
        if value.get("status") == "done":
            progress.saw_delivery(str(value.get("idempotency_key")))
        return f"{where} delivery {value.get('status')} attempt {value.get('attempt')}"
    if record.topic == topics.dlq and isinstance(value, dict):
        return f"{where} dead letter: {value.get('reason')}"
    if record.topic == topics.commands and isinstance(value, dict):
        quantity = (value.get("payload") or {}).get("quantity")
        return f"{where} command {value.get('kind')} → {quantity}"
    if "ce_type" in headers:
        progress.saw_event(headers.get("ce_id", ""))
        return f"{where} {headers['ce_type']}"
    return where


async def status_line(store: OutboxStore, http: httpx.AsyncClient, sim_url: str) -> str:
    """Outbox rows by status and the simulator's stock, on one line."""
    counts: dict[str, int] = {}
    for (_shop, status), n in (await store.counts()).items():
        counts[status] = counts.get(status, 0) + n
    stock = (await http.get(f"{sim_url}/_sim/stock")).json()
    levels = " · ".join(
        f"{shop} {vid}={qty}"
        for shop, data in sorted(stock.items())
        for vid, qty in sorted(data.get("variants", {}).items())
    )
    outbox = " · ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"
    return f"  outbox: {outbox}   |   simulator stock: {levels}"


async def status_loop(store: OutboxStore, sim_url: str, screen: Screen) -> None:
    """The status line, printed whenever it changes."""
    last = ""
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            line = await status_line(store, http, sim_url)
            if line != last:
                screen.say(line)
                last = line
            await asyncio.sleep(1.0)


async def send_samples(
    config: Config, ingress_url: str, screen: Screen, progress: Progress, run_id: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for shop_id, name, event in SAMPLES:
            body = sample_bytes(name)
            suffix, headers = sign_request(config.shops[shop_id], body, event, time.time())
            response = await http.post(
                f"{ingress_url}/webhooks/{shop_id}{suffix}", content=body, headers=headers
            )
            answer = response.json()
            if response.status_code in (200, 202):
                progress.expected_events.add(answer["id"])
            screen.say(f"→ webhook {shop_id:<10} {event:<16} {response.status_code} {answer}")
    publisher = KafkaPublisher(config.kafka, client_id="bridge-dev-samples")
    await publisher.start(wait=True)
    try:
        topic = Topics(config.kafka.topic_prefix).commands
        for command in sample_commands(run_id):
            key = f"{command['shop']}:{command['target']['variant']}".encode()
            await publisher.publish(
                topic, key, orjson.dumps(command), [("content-type", b"application/json")], 10
            )
            progress.expected_deliveries.add(command["idempotency_key"])
            screen.say(
                f"→ command {command['shop']:<10} set_stock {command['target']['variant']} → "
                f"{command['payload']['quantity']}"
            )
    finally:
        await publisher.stop()


def pii_key(workdir: Path) -> str:
    """A dev AES key kept in the work dir, so events of earlier runs stay decryptable."""
    path = workdir / "pii.key"
    if not path.exists():
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


async def start_kafka(workdir: Path, port: int, screen: Screen) -> tuple[str, LocalKafka | None]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        screen.say(f"kafka: using KAFKA_BOOTSTRAP_SERVERS={external}")
        return external, None
    kafka = LocalKafka(workdir / "kafka", port=port, progress=sys.stderr)
    screen.say("kafka: starting a local broker (the first run fetches it from Maven Central)…")
    bootstrap = await asyncio.to_thread(kafka.start)
    screen.say(f"kafka ready at {bootstrap}")
    return bootstrap, kafka


async def dev(args: argparse.Namespace, workdir: Path, screen: Screen) -> int:
    stop = asyncio.Event()
    with stop_on_signals(stop):
        bootstrap, kafka = await start_kafka(workdir, args.kafka_port, screen)
        try:
            return await _run_system(args, workdir, bootstrap, stop, screen)
        finally:
            if kafka is not None:
                await asyncio.to_thread(kafka.stop)
                screen.say("kafka stopped")


async def _run_system(
    args: argparse.Namespace, workdir: Path, bootstrap: str, stop: asyncio.Event, screen: Screen
) -> int:
    sim_port = args.simulator_port or free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    ingress_port = args.port or free_port()
    ingress_url = f"http://127.0.0.1:{ingress_port}"
    config_file = workdir / "bridge.toml"
    config_file.write_text(dev_config_text(workdir, bootstrap, sim_url, pii_key(workdir)))
    config = load_config(config_file, {})
    created = await ensure_topics(config.kafka)
    screen.say(f"topics: {len(created)} created, config in {config_file}")
    options = SimulatorOptions(
        webhooks_to=ingress_url,
        initial_stock=(
            StockSeed("cb-taipei", variants={CB_VARIANT: 10}, products={CB_VARIANT: CB_PRODUCT}),
            StockSeed("bento-bkk", variants={BENTO_VARIANT: 10}),
        ),
    )
    progress = Progress()
    async with contextlib.AsyncExitStack() as stack:
        store = await open_store(config.outbox.dsn)
        stack.push_async_callback(store.close)
        await store.migrate()
        await stack.enter_async_context(
            running_server(create_simulator(config, options=options), port=sim_port)
        )
        screen.say(f"simulator listening on {sim_url}")
        await stack.enter_async_context(running_server(create_ingress(config), port=ingress_port))
        screen.say(f"ingress listening on {ingress_url}  (POST /webhooks/{{shop}}, GET /metrics)")
        tasks = _Tasks(stop)
        stack.push_async_callback(tasks.close)
        tail_ready = asyncio.Event()
        tasks.start("tail", tail(config, screen, progress, tail_ready))
        consumer_started = asyncio.Event()
        tasks.start("commands", runtime.run(commands.CommandsApp(), config, stop, consumer_started))
        tasks.start("relay", _relay(config, stop))
        tasks.start("status", status_loop(store, sim_url, screen))
        await tasks.wait_for(tail_ready, consumer_started)
        screen.say("consumer 'bridge-commands' and relay running — sending sample traffic")
        if not args.no_samples:
            run_id = secrets.token_hex(3)
            await send_samples(config, ingress_url, screen, progress, run_id)
        if args.once:
            ok = await tasks.until(lambda: progress.complete, progress.changed, args.timeout)
            screen.say(
                "all samples landed and delivered" if ok else "timed out waiting for samples"
            )
            async with httpx.AsyncClient(timeout=5) as http:
                screen.say(await status_line(store, http, sim_url))
            return 0 if ok else 1
        screen.say("running — Ctrl-C to stop")
        await tasks.until(lambda: False, progress.changed, None)
    return 0 if tasks.failed is None else 1


async def _relay(config: Config, stop: asyncio.Event) -> None:
    from bridge.relay.cli import run_relay

    await run_relay(config, stop, owner="bridge-dev")


class _Tasks:
    """Background parts of the dev system; any of them failing stops the whole thing."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.failed: BaseException | None = None

    def start(self, name: str, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: self._done(name, t))
        self.tasks[name] = task

    def _done(self, name: str, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self.stop.is_set():
            return
        self.failed = task.exception() or RuntimeError(f"{name} stopped unexpectedly")
        log.get_logger("bridge.devtools.dev").error(
            "component_failed", component=name, error=str(self.failed)
        )
        self.stop.set()

    async def wait_for(self, *events: asyncio.Event) -> None:
        for event in events:
            await self.until(event.is_set, event, 60.0)
        if self.stop.is_set():
            raise BridgeError(f"commerce-bridge dev: a component failed to start: {self.failed}")

    async def until(
        self, done: Callable[[], bool], changed: asyncio.Event, timeout: float | None
    ) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            if self.stop.is_set():
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            changed.clear()
            waiters = {
                asyncio.ensure_future(changed.wait()),
                asyncio.ensure_future(self.stop.wait()),
            }
            _, pending = await asyncio.wait(
                waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for w in pending:
                w.cancel()
        return True

    async def close(self) -> None:
        self.stop.set()
        for name, task in self.tasks.items():
            if name in ("tail", "status"):
                task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev", help="run the whole system locally with sample traffic")
    p.add_argument("--dir", default=".bridge-dev", help="work dir: config, outbox, Kafka data")
    p.add_argument("--port", type=int, default=8080, help="ingress port (0: any free port)")
    p.add_argument("--simulator-port", type=int, default=8081, help="simulator port (0: any)")
    p.add_argument("--kafka-port", type=int, default=0, help="local Kafka port (0: any free)")
    p.add_argument("--no-samples", action="store_true", help="send no sample traffic")
    p.add_argument(
        "--once",
        action="store_true",
        help="send the samples, wait until all landed and were delivered, then stop",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="--once: give up after N s")
    p.add_argument("--verbose", action="store_true", help="show the components' info logs")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    log.configure("info" if args.verbose else "warning", "console")
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    return run(dev(args, workdir, Screen(sys.stdout)))
