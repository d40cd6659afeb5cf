"""The ingress app in this process, without HTTP: CPU and garbage collection per webhook.

    .venv/bin/python bench/ingress_inproc.py [--count 20000] [--concurrency 64] [--fake]

``create_app`` as ``commerce-bridge ingress`` builds it (every feature on, log level info, JSON to
a temporary file), driven over ASGI by ``--concurrency`` clients, each sending distinct 5.7 KB
BentoWeb orders one after another (``bench/ingress.py``'s body). The publisher is a real
``KafkaPublisher`` (``$KAFKA_BOOTSTRAP_SERVERS``, else a local broker), or with ``--fake`` one that
acknowledges everything every 5 ms, as a broker with ``linger_ms = 5`` would. Reports process CPU
µs per webhook and the collector's runs and time (``gc.callbacks``) over the measured webhooks,
after a warm-up of 2,000. What it leaves out — uvicorn, the sockets — is what the bare endpoint of
``bench/ingress.py`` measures; what it keeps is the ingress's own work under concurrency, which a
sequential micro-benchmark misses (objects held across the await, cache pressure).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from ingress_plan import SHOP, config_text
from samples import ID_BASE, bento_order_template
from starlette.applications import Starlette

from bridge import log as bridge_log
from bridge.config import parse_config
from bridge.ingress.app import create_app
from bridge.kafka.publisher import Headers, KafkaPublisher, Published, Publisher
from bridge.kafka.topics import ensure_topics
from bridge.serve import run

TOKEN = "bench-token-0123456789"  # noqa: S105 - the benchmark shop's webhook token
WARMUP = 2000


class AckEvery5ms:
    """Acknowledges every record published in the last 5 ms at once, like a broker's linger."""

    ready = True

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []
        self.offset = 0

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, timeout: float
    ) -> Published:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(ack)
        await ack
        self.offset += 1
        return Published(topic, 0, self.offset)

    async def broker(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            waiting, self.waiting = self.waiting, []
            for ack in waiting:
                ack.set_result(None)


def scope_for(body: bytes) -> dict[str, Any]:
    path = f"/webhooks/{SHOP}/order.new"
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-webhook-token", TOKEN.encode()),
    ]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8080), "state": {},
    }  # fmt: skip


async def client(app: Starlette, bodies: list[bytes], statuses: dict[int, int]) -> None:
    for body in bodies:
        messages: list[MutableMapping[str, Any]] = [
            {"type": "http.request", "body": body, "more_body": False}
        ]

        async def receive(messages: list[MutableMapping[str, Any]] = messages) -> Any:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope_for(body), receive, send)


@contextlib.contextmanager
def collections_timed() -> Iterator[list[float]]:
    """[runs, seconds] of the garbage collector while the block runs."""
    totals, started = [0.0, 0.0], [0.0]

    def callback(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            totals[0] += 1
            totals[1] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    try:
        yield totals
    finally:
        gc.callbacks.remove(callback)


async def measure(
    app: Starlette, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    statuses: dict[int, int] = {}

    def drive(part: list[bytes]) -> Awaitable[list[None]]:
        return asyncio.gather(
            *(client(app, part[i::concurrency], statuses) for i in range(concurrency))
        )

    async with app.router.lifespan_context(app):
        await drive(bodies[:WARMUP])
        with collections_timed() as collected:
            cpu = time.process_time()
            await drive(bodies[WARMUP:])
            used = time.process_time() - cpu
    return used, collected, statuses


async def main(args: argparse.Namespace, bootstrap: str) -> str:
    prefix = f"inproc-{os.urandom(3).hex()}"
    pii_key = base64.b64encode(os.urandom(32)).decode()
    config = parse_config(config_text(bootstrap, prefix, TOKEN, pii_key), {}, "bench")
    publisher: Publisher
    broker = None
    if args.fake:
        publisher = fake = AckEvery5ms()
        broker = asyncio.create_task(fake.broker())
    else:
        await ensure_topics(config.kafka)
        publisher = kafka = KafkaPublisher(config.kafka)
        await kafka.start(wait=True)
    try:
        app = create_app(config, publisher)
        template = bento_order_template()
        stamp = template.stamp(time.time())
        bodies = [template.body(ID_BASE + n, stamp) for n in range(WARMUP + args.count)]
        used, (runs, seconds), statuses = await measure(app, bodies, args.concurrency)
    finally:
        if broker is not None:
            broker.cancel()
        if isinstance(publisher, KafkaPublisher):
            await publisher.stop()
    kind = "acks every 5 ms" if args.fake else f"Kafka at {bootstrap}"
    return (
        f"{args.count:,} webhooks, {args.concurrency} concurrent, {kind}: "
        f"{1e6 * used / args.count:.0f} µs CPU per webhook; garbage collector {runs:.0f} runs, "
        f"{1e6 * seconds / args.count:.1f} µs per webhook; answers {statuses}"
    )


def cli() -> int:
    parser = argparse.ArgumentParser(prog="bench/ingress_inproc.py")
    parser.add_argument("--count", type=int, default=20000, help="measured webhooks (20,000)")
    parser.add_argument("--concurrency", type=int, default=64, help="clients at once (64)")
    parser.add_argument("--fake", action="store_true", help="no broker: acks every 5 ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "ingress.log", "w") as logs:
        bridge_log.configure("info", "json", logs)
        with contextlib.ExitStack() as stack:
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
            if not bootstrap and not args.fake:
                from bridge.devtools.kafka.local import LocalKafka

                kafka = LocalKafka(Path(tmp) / "kafka", progress=sys.stderr)
                stack.callback(kafka.stop)
                bootstrap = kafka.start()
            print(run(main(args, bootstrap or "127.0.0.1:1")))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
