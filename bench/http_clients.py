"""HTTP clients on the relay's own request pattern: which one should the relay use?

    python bench/http_clients.py [--quick] [--json FILE]

The pattern: many shops, one client (keep-alive pool) per shop as the relay keeps them, small
JSON PUTs with an ``Idempotency-Key``, each inside its own total deadline (``asyncio.timeout``),
``--concurrency`` requests in flight spread over the shops round robin. The server is the real
simulator (``commerce-bridge simulate``, its own process) with every shop unlimited, so the
figures are the client's: requests/s of this one process and its CPU µs per request, next to the
simulator's CPU (it must not be the ceiling).

Clients measured, each on a fresh simulator state:

* ``httpx``: ``httpx.AsyncClient`` per shop on its own ``AsyncHTTPTransport`` (what the relay used);
* ``aiohttp``: ``aiohttp.ClientSession`` per shop (``TCPConnector``, keep-alive);
* ``httpx on aiohttp``: ``httpx.AsyncClient`` per shop whose transport is
  :class:`bridge.relay.transport.AiohttpTransport` over one shared aiohttp session — the platform
  clients keep their ``httpx.AsyncClient`` seam, the wire is aiohttp's;
* ``relay client``: what ``bridge.relay.cli.http_client`` builds for the relay
  (:class:`bridge.relay.wire.WireClient`: httpx's API, plain requests straight to the shared
  aiohttp session, no timer of aiohttp's inside the caller's deadline) driven through
  ``CyberbizClient.set_stock``: the relay's full send path less the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from cpu import CpuMeter
from procs import Child, log, wait_http
from report import add_json_flag, load_average, machine_facts, write_summary

from bridge.config import load_config
from bridge.platforms import client_for
from bridge.platforms.base import PlatformClient
from bridge.relay.cli import http_client, shared_session
from bridge.relay.transport import AiohttpTransport, session
from bridge.serve import free_port, run
from bridge.targets import StockTarget

TOKEN = "bench-token"  # noqa: S105 -- a throwaway token for the loopback simulator
PRODUCT = "1001"
DEADLINE = 10.0
BODY = b'{"inventory_quantity": 1}'
PYTHON = sys.executable

Put = Callable[[int, int], Awaitable[None]]  # (shop index, request number)
Timed = tuple[float, float]  # wall seconds, CPU seconds of this process


def config_text(sim_url: str, shops: int) -> str:
    lines = ["[outbox]", 'dsn = "sqlite:///unused.db"', "[privacy]", 'mode = "redact"']
    for n in range(shops):
        lines += [
            "[[shops]]",
            f'id = "c{n:04}"',
            'platform = "cyberbiz"',
            f'api_base = "{sim_url}/cyberbiz/c{n:04}"',
            f'api_token = "{TOKEN}"',
            'webhook_secrets = ["unused"]',
            "rate_limit = 1000000.0",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    rate: float
    client_us: float
    simulator_pct: float
    client_pct: float


def _url(sim: str, shop: int, n: int) -> str:
    return f"{sim}/cyberbiz/c{shop:04}/v1/products/{PRODUCT}/product_variants/{n}"


def _headers(n: int) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"k-{n}",
    }


async def drive(put: Put, shops: int, count: int, concurrency: int) -> Timed:
    """``count`` PUTs, ``concurrency`` in flight, shops round robin; wall and CPU seconds.

    Set-up (creating the clients) is outside the measurement: the relay does it once.
    """
    numbers = iter(range(count))

    async def worker() -> None:
        for n in numbers:
            async with asyncio.timeout(DEADLINE):
                await put(n % shops, n)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


async def with_httpx(sim: str, shops: int, count: int, concurrency: int) -> Timed:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=4, keepalive_expiry=30.0)
    pools = [
        httpx.AsyncClient(timeout=DEADLINE, transport=httpx.AsyncHTTPTransport(limits=limits))
        for _ in range(shops)
    ]

    async def put(shop: int, n: int) -> None:
        response = await pools[shop].put(_url(sim, shop, n), content=BODY, headers=_headers(n))
        response.raise_for_status()

    try:
        return await drive(put, shops, count, concurrency)
    finally:
        for pool in pools:
            await pool.aclose()


async def with_aiohttp(sim: str, shops: int, count: int, concurrency: int) -> Timed:
    sessions = [
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=30.0))
        for _ in range(shops)
    ]

    async def put(shop: int, n: int) -> None:
        async with sessions[shop].put(_url(sim, shop, n), data=BODY, headers=_headers(n)) as r:
            await r.read()
            r.raise_for_status()

    try:
        return await drive(put, shops, count, concurrency)
    finally:
        for session in sessions:
            await session.close()


async def with_httpx_on_aiohttp(sim: str, shops: int, count: int, concurrency: int) -> Timed:
    """One ``httpx.AsyncClient`` on :class:`AiohttpTransport` (a shared session) for all shops."""
    wire = session()
    http = httpx.AsyncClient(timeout=DEADLINE, transport=AiohttpTransport(wire))

    async def put(shop: int, n: int) -> None:
        response = await http.put(_url(sim, shop, n), content=BODY, headers=_headers(n))
        response.raise_for_status()

    try:
        return await drive(put, shops, count, concurrency)
    finally:
        await http.aclose()
        await wire.close()


async def with_relay_client(
    sim: str, shops: int, count: int, concurrency: int, config_path: Path
) -> Timed:
    """The relay's pools (``http_client``) and the Cyberbiz client's ``set_stock``."""
    config = load_config(config_path)
    wire = shared_session(config, traced=False)  # as the relay (pace_on="answer")
    http = http_client(config, wire, traced=False, bounded=True)  # drive(): a deadline each
    clients: list[PlatformClient] = [client_for(config.shops[s], http) for s in config.shops]

    async def put(shop: int, n: int) -> None:
        target = StockTarget("variant", str(n), product=PRODUCT)
        await clients[shop].set_stock(target, 1, f"k-{n}")

    try:
        return await drive(put, shops, count, concurrency)
    finally:
        await http.aclose()
        await wire.close()


async def measure(
    name: str,
    sim: str,
    simulator: Child,
    body: Callable[[], Awaitable[Timed]],
    count: int,
) -> Result:
    async with httpx.AsyncClient(base_url=sim) as control:
        (await control.post("/_sim/reset")).raise_for_status()
    log(f"{name}: {count} PUTs")
    meter = CpuMeter({"simulator": simulator.pid})
    meter.start()
    seconds, client_cpu = await body()
    used = meter.stop()
    return Result(
        name,
        rate=count / seconds,
        client_us=1e6 * client_cpu / count,
        simulator_pct=used.get("simulator", 0.0),
        client_pct=100 * client_cpu / seconds,
    )


async def bench(args: argparse.Namespace, tmp: Path) -> list[Result]:
    shops, concurrency = args.shops, args.concurrency
    count = 4_000 if args.quick else 20_000
    port = free_port()
    sim = f"http://127.0.0.1:{port}"
    config = tmp / "bridge.toml"
    config.write_text(config_text(sim, shops))
    simulator = Child(
        "simulator",
        [PYTHON, "-m", "bridge", "--log-level", "warning", "simulate", "--port", str(port),
         "--config", str(config)],
        tmp / "simulator.log",
    )  # fmt: skip
    try:
        wait_http(f"{sim}/_sim/health", simulator.alive)
        plans: list[tuple[str, Callable[[], Awaitable[Timed]]]] = [
            ("httpx", lambda: with_httpx(sim, shops, count, concurrency)),
            ("aiohttp", lambda: with_aiohttp(sim, shops, count, concurrency)),
            ("httpx on aiohttp", lambda: with_httpx_on_aiohttp(sim, shops, count, concurrency)),
            (
                "relay client (WireClient, set_stock)",
                lambda: with_relay_client(sim, shops, count, concurrency, config),
            ),
        ]
        results = []
        for _ in range(args.rounds):
            for name, body in plans:
                results.append(await measure(name, sim, simulator, body, count))
        return results
    finally:
        simulator.stop()


def best(results: list[Result]) -> list[Result]:
    """Per client, the round with the lowest CPU per request (the least disturbed one)."""
    chosen: dict[str, Result] = {}
    for r in results:
        if r.name not in chosen or r.client_us < chosen[r.name].client_us:
            chosen[r.name] = r
    return list(chosen.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,000 requests per client")
    parser.add_argument("--shops", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the clients this often")
    add_json_flag(parser)
    args = parser.parse_args()
    before = load_average()
    command = "python bench/http_clients.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-http-") as folder:
        results = best(run(bench(args, Path(folder))))
    httpx_us = next(r.client_us for r in results if r.name == "httpx")
    sys.stdout.write(f"$ {command.strip()}\n\n")
    for name, value in machine_facts():
        sys.stdout.write(f"{name}: {value}\n")
    sys.stdout.write(
        f"\n{args.shops} shops, {args.concurrency} in flight, one pool per shop, "
        f"{DEADLINE:g} s deadline per request; best of {args.rounds} rounds (least CPU)\n\n"
        "| client | req/s | client CPU µs/req | vs httpx | client % core | simulator % core |\n"
        "|---|---|---|---|---|---|\n"
    )
    summary = []
    for r in results:
        sys.stdout.write(
            f"| {r.name} | {r.rate:,.0f} | {r.client_us:,.0f} | {r.client_us / httpx_us:.2f} "
            f"| {r.client_pct:.0f}% | {r.simulator_pct:.0f}% |\n"
        )
        summary.append(
            {
                "row": f"http client {r.name}: CPU µs per PUT",
                "goal": "least CPU (choose the relay's client)",
                "measured": f"{r.client_us:,.0f} µs ({r.rate:,.0f} req/s)",
                "ratio": f"{r.client_us / httpx_us:.2f} of httpx",
            }
        )
    write_summary(args.json, "http_clients", summary, load_before=before, load_after=load_average())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
