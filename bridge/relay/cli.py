"""``commerce-bridge relay``: deliver the outbox to the platforms until SIGTERM, with /metrics on a
port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket

import aiohttp
import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from bridge import clitools, memory
from bridge.config import Config
from bridge.kafka.publisher import KafkaPublisher
from bridge.log import get_logger
from bridge.ops import ops_app
from bridge.outbox.retention import purging
from bridge.outbox.store import open_store
from bridge.platforms import client_for
from bridge.platforms.base import PlatformClient
from bridge.relay.lanes import RelayOptions
from bridge.relay.pacing import PACE_ON
from bridge.relay.relay import Relay
from bridge.relay.transport import session
from bridge.relay.wire import WireClient
from bridge.serve import run, running_server, stop_on_signals

log = get_logger(__name__)

DEFAULT_METRICS_PORT = 9101
KAFKA_START_WAIT = 10.0  # seconds to wait for Kafka at start before sending without it
MAX_CONNECTIONS = 2048  # requests in flight from one relay; more wait for a free connection
KEEPALIVE_SECONDS = 30.0
DEFAULTS = RelayOptions()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "relay",
        parents=[clitools.CONFIG],
        help="send the outbox to the platforms (rate limited, retried, idempotent)",
        description="Claims due outbox rows per shop, sends them at the shop's rate limit "
        "(shared by every relay on the same database), retries failures and publishes each "
        "outcome to the deliveries topic. SIGTERM drains and exits 0.",
    )
    p.add_argument("--owner", help="lease owner id, unique per process (default host:pid:random)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help=f"serve /metrics, /healthz, /readyz here (default {DEFAULT_METRICS_PORT}; 0: off)",
    )
    p.add_argument(
        "--metrics-host",
        default="0.0.0.0",  # noqa: S104 -- scraped from outside the container
        help="bind address of the metrics port (default 0.0.0.0)",
    )
    tuning = p.add_argument_group("tuning")
    tuning.add_argument(
        "--max-lanes",
        type=int,
        default=DEFAULTS.max_lanes,
        metavar="N",
        help=f"shops sent to at once by this process (default {DEFAULTS.max_lanes})",
    )
    tuning.add_argument(
        "--lane-turn",
        type=float,
        default=DEFAULTS.lane_turn_seconds,
        metavar="SECONDS",
        help="hand a busy shop to another relay after this long, so new replicas get a share "
        f"(default {DEFAULTS.lane_turn_seconds:g}; 0: never)",
    )
    tuning.add_argument(
        "--pace-on",
        choices=PACE_ON,
        default=DEFAULTS.pace_on,
        help="when an earlier request surely counted at the platform: once answered (default, "
        "safe) or once written (tighter, for platforms that count requests on arrival)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = clitools.load(args)

    async def serve() -> None:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            await run_relay(
                config,
                stop,
                owner=args.owner,
                metrics_port=args.metrics_port or None,
                metrics_host=args.metrics_host,
                options=RelayOptions(
                    max_lanes=args.max_lanes,
                    lane_turn_seconds=args.lane_turn,
                    pace_on=args.pace_on,
                ),
            )

    run(serve())
    return 0


def default_owner() -> str:
    """Unique per process: the host, the pid and a random suffix (pids repeat in containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def shared_session(_config: Config, *, traced: bool = True) -> aiohttp.ClientSession:
    """The relay's one aiohttp session (connection pool) for every shop; close it at the end.
    ``traced``: writes report when their body left (needed by ``pace_on="sent"`` only)."""
    return session(connections=MAX_CONNECTIONS, keepalive=KEEPALIVE_SECONDS, traced=traced)


def http_client(
    config: Config,
    shared: aiohttp.ClientSession | None = None,
    *,
    traced: bool = True,
    bounded: bool = False,
) -> httpx.AsyncClient:
    """The HTTP client a platform client sends through: httpx's API on aiohttp's wire.

    ``shared`` is the relay's session (:func:`shared_session`); without it the client opens and
    closes its own. Plain requests go straight to aiohttp (:class:`WireClient`); with ``traced``
    a write marks the current :class:`~bridge.relay.pacing.Send` when it left; with ``bounded``
    the caller puts a deadline around every request (the relay does) and aiohttp sets none of
    its own. aiohttp keeps idle
    connections per host in O(1) structures, so one session serves every shop; httpcore scanned
    its whole pool per request, which is why the relay used to keep a pool per shop, and spent
    about twice the CPU per request (``bench/http_clients.py``).
    """
    timeout = config.relay.request_timeout
    if shared is None:
        own = session(traced=traced)
        return WireClient(own, timeout=timeout, traced=traced, owns=True, bounded=bounded)
    return WireClient(shared, timeout=timeout, traced=traced, bounded=bounded)


def metrics_app(relay: Relay, registry: CollectorRegistry, publisher: KafkaPublisher) -> Starlette:
    return ops_app(
        registry,
        lambda: (relay.ready, {"kafka": publisher.ready, "lanes": relay.active_lanes}),
    )


async def run_relay(
    config: Config,
    stop: asyncio.Event,
    *,
    owner: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    options: RelayOptions | None = None,
) -> None:
    """Run one relay until ``stop`` is set: store, HTTP client, platform clients, Kafka, and the
    retention purge (``outbox.retention``)."""
    registry = registry if registry is not None else CollectorRegistry()
    store = await open_store(config.outbox.dsn)
    publisher = KafkaPublisher(config.kafka, client_id="bridge-relay")
    traced = (options or RelayOptions()).pace_on == "sent"
    wire = shared_session(config, traced=traced)
    http = http_client(config, wire, traced=traced, bounded=True)  # Requests: one deadline each
    clients: dict[str, PlatformClient] = {}
    try:
        for sid, shop in config.shops.items():
            clients[sid] = client_for(shop, http)
        await store.migrate()
        await _start_publisher(publisher)
        relay = Relay(
            config,
            store,
            clients,
            publisher,
            owner=owner or default_owner(),
            registry=registry,
            options=options,
        )
        async with contextlib.AsyncExitStack() as stack:
            if metrics_port:
                app = metrics_app(relay, registry, publisher)
                url = await stack.enter_async_context(
                    running_server(app, host=metrics_host, port=metrics_port)
                )
                log.info("relay_metrics_listening", url=url)
            await stack.enter_async_context(purging(store, config.outbox.retention, stop))
            memory.settle_heap()  # started: full collections walk only the work in flight
            await relay.run(stop)
    finally:
        await publisher.stop()  # flushes what the reporter handed over
        for client in clients.values():
            await client.aclose()
        await http.aclose()
        await wire.close()
        await store.close()


async def _start_publisher(publisher: KafkaPublisher) -> None:
    """Wait a little for Kafka, then go on without it: sending never waits for the broker."""
    try:
        async with asyncio.timeout(KAFKA_START_WAIT):
            await publisher.start(wait=True)
    except TimeoutError:
        log.warning("relay_kafka_unavailable", hint="sending anyway; delivery records are dropped")
