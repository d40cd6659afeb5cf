"""The ingress benchmark's worker processes: (a) the bare endpoint, (b) the raw producer, (c) the
minimal ingress, and the Python client; ``bench/ingress.py _bare|_raw|_minimal|_client`` runs one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from ingress_plan import HOST, SHOP, load
from loadgen import closed_loop, paced
from procs import answer, ready_then_wait_for_go
from samples import ID_BASE, SignedRequests, bento_order_template

from bridge.config import Config

# bridge/ingress/cli.py's uvicorn options that matter for speed (the baselines use the same).
SERVER_OPTIONS: dict[str, Any] = {
    "proxy_headers": True,
    "forwarded_allow_ips": HOST,
    "timeout_graceful_shutdown": 20,
    "h11_max_incomplete_event_size": 64 * 1024,
}


def worker_bare(args: argparse.Namespace) -> int:
    """Baseline (a): ``commerce-bridge ingress``'s uvicorn set-up around an app that only answers
    202."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from bridge.serve import run, serve_until_stopped

    async def accept(request: Request) -> Response:
        await request.body()
        return Response(b'{"id":"bare","topic":"none"}', 202, media_type="application/json")

    async def ready(_request: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    routes = [
        Route("/webhooks/{shop}", accept, methods=["POST"]),
        Route("/webhooks/{shop}/{event}", accept, methods=["POST"]),
        Route("/readyz", ready),
    ]
    app = Starlette(routes=routes)
    run(serve_until_stopped(app, HOST, args.port, **SERVER_OPTIONS))  # as bridge/ingress/cli.py
    return 0


def worker_minimal(args: argparse.Namespace) -> int:
    """Baseline (c), the *minimal ingress*: the bare endpoint's stack reading the body, checking
    BentoWeb's token header (constant time) and answering 202 only after aiokafka's
    ``send_and_wait`` with the ingress's producer options (``acks=all``, idempotent)."""
    from aiokafka import AIOKafkaProducer
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from bridge.kafka.publisher import producer_options
    from bridge.kafka.topics import record_limit
    from bridge.platforms.bentoweb.webhooks import TOKEN_HEADER
    from bridge.serve import run, serve_until_stopped

    config = load(args.config)
    secret = config.shops[SHOP].webhook_secrets[0].encode()
    limit = record_limit(config.ingress.max_body_bytes)  # as the ingress
    options = producer_options(config.kafka, "bench-minimal", limit)
    producers: list[AIOKafkaProducer] = []  # made in the lifespan: aiokafka wants a running loop

    async def accept(request: Request) -> Response:
        body = await request.body()
        token = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(token, secret):
            return Response(b'{"error":"unauthorized"}', 401, media_type="application/json")
        await producers[0].send_and_wait(args.topic, body)
        return Response(b'{"id":"minimal"}', 202, media_type="application/json")

    async def ready(_request: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        producers.append(AIOKafkaProducer(**options))
        await producers[0].start()
        try:
            yield
        finally:
            await producers[0].stop()

    routes = [
        Route("/webhooks/{shop}/{event}", accept, methods=["POST"]),
        Route("/readyz", ready),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    run(serve_until_stopped(app, HOST, args.port, **SERVER_OPTIONS))
    return 0


def canonical_records(config: Config, count: int) -> list[tuple[bytes, bytes, Any]]:
    """(key, value, headers) as the ingress publishes them, for ``count`` distinct orders."""
    from bridge.kafka.cloudevents import headers_for
    from bridge.platforms import get_platform
    from bridge.platforms.base import Delivery
    from bridge.privacy import Privacy

    shop, privacy, template = config.shops[SHOP], Privacy(config.privacy), bento_order_template()
    platform, name = get_platform(shop.platform), template.event
    records = []
    for n in range(count):
        now = time.time()
        body = template.body(ID_BASE + n, template.stamp(now))
        received = datetime.fromtimestamp(now, UTC)
        delivery = Delivery(shop, body, {}, {}, name, None, received)
        event = platform.normalise(delivery, name, orjson.loads(body), privacy)
        value = orjson.dumps(event.value)
        records.append((event.key.encode(), value, headers_for(event, received)))
    return records


def worker_raw(args: argparse.Namespace) -> int:
    """Baseline (b): N concurrent send-and-wait loops on one producer set up as KafkaPublisher's."""
    from aiokafka import AIOKafkaProducer

    from bridge.kafka.publisher import producer_options
    from bridge.serve import run

    config = load(args.config)
    records = canonical_records(config, 2000)

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        producer = AIOKafkaProducer(**producer_options(config.kafka, "bench-raw"))
        await producer.start()
        latencies: list[float] = []
        errors = 0
        numbers = iter(range(10**9))

        async def sender(deadline: float) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                key, value, headers = records[next(numbers) % len(records)]
                sent = time.perf_counter()
                try:
                    await producer.send_and_wait(args.topic, value, key=key, headers=headers)
                except Exception:  # counted and reported
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - sent) * 1000)

        try:
            await sender(time.perf_counter() + 0.5)  # connections, metadata: a warm-up
            warm = len(latencies)
            latencies.clear()
            await loop.run_in_executor(None, ready_then_wait_for_go)
            started = time.perf_counter()
            deadline = started + args.duration
            await asyncio.gather(*(sender(deadline) for _ in range(args.concurrency)))
            seconds = time.perf_counter() - started
        finally:
            await producer.stop()
        statuses = {202: len(latencies)}
        return {"latencies": latencies, "statuses": statuses, "errors": errors, "seconds": seconds,
                "warmup": warm}  # fmt: skip

    answer(run(main()))
    return 0


def worker_client(args: argparse.Namespace) -> int:
    """Python load generator: paced at ``--rate`` (open loop) or ``--concurrency`` closed loop."""
    from bridge.serve import run

    shop = load(args.config).shops[SHOP]
    signer = SignedRequests(shop, f"{HOST}:{args.port}", bento_order_template())

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if args.rate:
            now = time.time()
            count = int(args.rate * args.duration)
            requests = [signer.build(args.base_id + n, now) for n in range(count)]
            await loop.run_in_executor(None, ready_then_wait_for_go)
            return dataclasses.asdict(await paced(HOST, args.port, requests, args.rate))
        await loop.run_in_executor(None, ready_then_wait_for_go)
        return await closed_loop(
            HOST,
            args.port,
            lambda n: signer.build(args.base_id + n, time.time()),
            args.concurrency,
            args.duration,
        )

    answer(run(main()))
    return 0


WORKERS = {
    "_bare": worker_bare,
    "_raw": worker_raw,
    "_minimal": worker_minimal,
    "_client": worker_client,
}
