"""``commerce-bridge relay`` as a process: /metrics, /healthz, /readyz, and a clean drain on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from bridge import memory
from bridge.cli import build_parser
from bridge.devtools.simulator import api_base
from bridge.kafka.topics import Topics
from bridge.outbox import Status, open_store
from bridge.relay import cli
from bridge.serve import free_port
from tests.relay.support import (
    CB_TOKEN,
    add,
    cyberbiz,
    eventually,
    make_config,
    rows,
    set_stock,
    simulator,
)


def test_relay_command_is_registered() -> None:
    """`commerce-bridge relay` parses its options and defaults to metrics on port 9101."""
    args = build_parser().parse_args(["relay", "--config", "b.toml", "--owner", "r1"])
    assert (cli.main, "b.toml", "r1", 9101) == (
        args.func,
        args.config,
        args.owner,
        args.metrics_port,
    )


def config_text(dsn: str, bootstrap: str, prefix: str, base: str) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"

[outbox]
dsn = "{dsn}"

[relay]
poll_interval = 0.05
request_timeout = 5.0

[privacy]
mode = "redact"

[[shops]]
id = "cb-term"
platform = "cyberbiz"
api_base = "{base}"
api_token = "{CB_TOKEN}"
webhook_secrets = ["unused"]
rate_limit = 20.0
"""


@pytest.mark.kafka
async def test_the_relay_settles_its_heap_once_started(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_relay`` settles the heap (``bridge.memory.settle_heap``) after its store, clients and
    Kafka producer are up and before the first send."""
    settled: list[bool] = []
    shop = cyberbiz("cb-settle", rate=20.0)
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    config = make_config([shop], dsn=dsn, bootstrap=kafka_bootstrap, prefix=kafka_topics.prefix)
    stop = asyncio.Event()

    def settle() -> None:
        settled.append(stop.is_set())
        stop.set()  # the relay then stops at once

    monkeypatch.setattr(memory, "settle_heap", settle)
    async with asyncio.timeout(30):
        await cli.run_relay(config, stop, owner="settle-1")
    assert [False] == settled


@pytest.mark.kafka
async def test_sigterm_finishes_in_flight_requests_and_exits_0(
    tmp_path: Path, kafka_bootstrap: str, kafka_topics: Topics
) -> None:
    """SIGTERM: no new sends, requests on the wire complete and are recorded, lane released."""
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    shop = cyberbiz("cb-term", rate=20.0)
    config = make_config([shop], dsn=dsn)
    store = await open_store(dsn)
    await store.migrate()
    port = free_port()
    try:
        ids = await add(
            store, [set_stock(shop, n, f"term-{n}", variant=f"3{n:02}") for n in range(60)]
        )
        async with simulator(config, latency_ms=300) as sim:
            config_file = tmp_path / "bridge.toml"
            config_file.write_text(
                config_text(dsn, kafka_bootstrap, kafka_topics.prefix, api_base(sim.url, shop))
            )
            with (tmp_path / "relay.log").open("wb") as output:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bridge", "--log-format", "json", "relay",
                    "--config", str(config_file), "--metrics-port", str(port), "--owner", "cli-1",
                    stdout=output, stderr=output,
                )  # fmt: skip
                try:

                    async def sending() -> bool:
                        return (await sim.stats())["cb-term"]["requests"] >= 10

                    await eventually(sending, what="the relay to send")
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                        metrics = await http.get("/metrics")
                        health = await http.get("/healthz")
                        ready = await http.get("/readyz")
                    process.send_signal(signal.SIGTERM)
                    async with asyncio.timeout(20):
                        code = await process.wait()
                finally:
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
            answered = {r["idempotency_key"] for r in await sim.requests("cb-term")}
            stats = (await sim.stats())["cb-term"]
        final = await rows(store)
        lane_free = await store.acquire_lane("cb-term", "someone-else", 30.0, time.time())
    finally:
        await store.close()
    log = (tmp_path / "relay.log").read_text()
    assert 0 == code, log
    assert (200, 200, 200) == (metrics.status_code, health.status_code, ready.status_code)
    assert 'bridge_relay_attempts_total{outcome="done",shop="cb-term"}' in metrics.text
    body = ready.json()
    assert ({"ready", "checks"}, True, True) == (set(body), body["ready"], body["checks"]["kafka"])
    assert stats["requests"] == len(answered)  # every request sent got its answer
    statuses = {r.idempotency_key: r.status for r in final}
    assert {Status.DONE} == {statuses[k] for k in answered}
    assert {Status.PENDING} == {s for k, s in statuses.items() if k not in answered}
    assert len(answered) < len(ids), "stopped before the queue was empty"
    assert lane_free
