"""Three `commerce-bridge relay` processes on one shop, on SQLite and on PostgreSQL: the shop's
limit holds at the simulator and every row is delivered exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from bridge.devtools.simulator import api_base
from bridge.kafka.topics import Topics
from bridge.outbox import Status, open_store
from bridge.serve import free_port
from tests.relay.support import (
    CB_TOKEN,
    add,
    all_in,
    cyberbiz,
    eventually,
    make_config,
    most_in_any_window,
    rows,
    set_stock,
    simulator,
)

pytestmark = pytest.mark.kafka

LIMIT = 5
ROWS = 30
RELAYS = 3
COMMAND = str(Path(sys.executable).parent / "commerce-bridge")


def config_text(dsn: str, bootstrap: str, prefix: str, base: str) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"

[outbox]
dsn = "{dsn}"

[relay]
poll_interval = 0.05
request_timeout = 2.0
lease_seconds = 10.0

[privacy]
mode = "redact"

[[shops]]
id = "cb-procs"
platform = "cyberbiz"
api_base = "{base}"
api_token = "{CB_TOKEN}"
webhook_secrets = ["unused"]
rate_limit = {LIMIT}.0
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty outbox database that the three processes share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    dsn: str = request.getfixturevalue("postgres_schema_dsn")
    return dsn


@contextlib.asynccontextmanager
async def relay_processes(
    config_file: Path, logs: Path, ports: list[int]
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """One relay process per port (lanes handed over every second); SIGTERM and reap at exit."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for n, port in enumerate(ports):
            with (logs / f"relay-{n}.log").open("wb") as output:
                argv = [
                    "--log-format", "json", "relay", "--config", str(config_file),
                    "--metrics-port", str(port), "--owner", f"proc-{n}", "--lane-turn", "1",
                ]  # fmt: skip
                process = await asyncio.create_subprocess_exec(
                    COMMAND, *argv, stdout=output, stderr=output
                )
                processes.append(process)
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def ready(port: int) -> bool:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        try:
            return 200 == (await http.get("/readyz")).status_code
        except httpx.TransportError:
            return False


async def done_count(port: int) -> float:
    """``bridge_relay_attempts_total{outcome="done"}`` of the relay serving metrics on ``port``."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        text = (await http.get("/metrics")).text
    found = re.search(r'bridge_relay_attempts_total\{outcome="done",shop="cb-procs"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


async def test_three_relay_processes_share_one_shops_limit(
    shared_dsn: str, tmp_path: Path, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """Three processes, one shop at 5/s, lanes changing hands every second: at most 5 requests in
    any 1 s at the simulator, no 429, each of 30 writes applied once, done once, by several."""
    shop = cyberbiz("cb-procs", rate=float(LIMIT))
    config = make_config([shop], dsn=shared_dsn)
    store = await open_store(shared_dsn)
    ports = [free_port() for _ in range(RELAYS)]
    try:
        await store.migrate()
        async with simulator(config) as sim:
            config_file = tmp_path / "bridge.toml"
            base = api_base(sim.url, shop)
            config_file.write_text(
                config_text(shared_dsn, kafka_bootstrap, kafka_topics.prefix, base)
            )
            async with relay_processes(config_file, tmp_path, ports) as processes:
                for port in ports:
                    await eventually(
                        partial(ready, port), what=f"relay on {port} ready", timeout=60
                    )
                ids = await add(
                    store,
                    [set_stock(shop, n, f"proc-{n}", variant=f"9{n:02}") for n in range(ROWS)],
                )
                await eventually(
                    partial(all_in, store, ids, Status.DONE), what="all done", timeout=60
                )
                done = [await done_count(port) for port in ports]
            codes = [p.returncode for p in processes]
            stats = (await sim.stats())["cb-procs"]
            log = await sim.requests("cb-procs")
        final = await rows(store)
    finally:
        await store.close()
    assert [0] * RELAYS == codes, [(tmp_path / f"relay-{n}.log").read_text() for n in range(3)]
    assert (ROWS, 0) == (stats["requests"], stats["429"])
    assert stats["max_in_any_1s"] <= LIMIT
    assert most_in_any_window(r["t"] for r in log) <= LIMIT
    applied = Counter(r["idempotency_key"] for r in log if r["applied"])
    assert {r.idempotency_key: 1 for r in final} == dict(applied)
    assert ROWS == sum(done)
    assert sum(1 for n in done if n) >= 2, f"no handover between the processes: {done}"
