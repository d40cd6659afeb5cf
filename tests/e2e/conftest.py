"""The whole product as real processes for inventory sync: the simulator sends the platforms'
webhooks to the ingress, the inventory-sync consumer plans writes, the relay sends them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bridge.serve import free_port
from tests.reliability.conftest import PII_KEY
from tests.reliability.harness import Proc

# (shop, platform, product, variant) of the group "tee"; a second group "cap" has one variant each.
TEE = (
    ("cb-taipei", "cyberbiz", "1001", "5001"),
    ("cb-tainan", "cyberbiz", "2001", "6001"),
    ("bento-bkk", "bentoweb", None, "753758"),
)
CAP = (("cb-taipei", "1002", "5002"), ("cb-tainan", "2002", "6002"), ("bento-bkk", None, "753759"))


def _shop(shop: str, platform: str, sim_url: str) -> str:
    if platform == "cyberbiz":
        auth = f'api_token = "tok-{shop}"'
    else:
        auth = f'client_id = "id-{shop}"\nclient_secret = "secret-{shop}"'
    return f"""
[[shops]]
id = "{shop}"
platform = "{platform}"
api_base = "{sim_url}/{platform}/{shop}"
{auth}
webhook_secrets = ["whsec-{shop}"]
rate_limit = 5.0
"""


def _member(shop: str, product: str | None, variant: str) -> str:
    product_part = "" if product is None else f'product = "{product}", '
    return f'  {{ shop = "{shop}", {product_part}variant = "{variant}" }},'


def config_text(bootstrap: str, prefix: str, dsn: str, sim_url: str, reconcile: float) -> str:
    shops = "".join(_shop(s, p, sim_url) for s, p, _, _ in TEE)
    tee = "\n".join(_member(s, p, v) for s, _, p, v in TEE)
    cap = "\n".join(_member(s, p, v) for s, p, v in CAP)
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
linger_ms = 1

[outbox]
dsn = "{dsn}"

[relay]
poll_interval = 0.05

[inventory_sync]
reconcile_interval = {reconcile}

[privacy]
mode = "encrypt"
key = "{PII_KEY}"
{shops}
[[sync_groups]]
id = "tee"
members = [
{tee}
]

[[sync_groups]]
id = "cap"
members = [
{cap}
]
"""


class SyncStack:
    """Simulator, ingress, inventory-sync consumer and relay as processes of one test."""

    def __init__(self, folder: Path, bootstrap: str, prefix: str) -> None:
        self.folder = folder
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.sim_url = f"http://127.0.0.1:{free_port()}"
        self.ingress_port = free_port()
        self.config = folder / "bridge.toml"
        self.procs: dict[str, Proc] = {}

    def write(self, reconcile: float = 0.0) -> None:
        dsn = f"sqlite:///{self.folder / 'outbox.db'}"
        self.config.write_text(
            config_text(self.bootstrap, self.prefix, dsn, self.sim_url, reconcile)
        )

    def _proc(self, name: str, *args: str) -> Proc:
        proc = Proc(name, [*args, "--config", str(self.config)], self.folder)
        self.procs[name] = proc
        return proc

    async def start(self, *sim_faults: str) -> None:
        sim_port = self.sim_url.rsplit(":", 1)[1]
        ingress_url = f"http://127.0.0.1:{self.ingress_port}"
        sim = self._proc(
            "simulate", "simulate", "--port", sim_port, "--webhooks-to", ingress_url, *sim_faults
        )
        ingress = self._proc(
            "ingress", "ingress", "--host", "127.0.0.1", "--port", str(self.ingress_port),
            "--ops-port", str(free_port()),
        )  # fmt: skip
        consumer = self._proc("inventory-sync", "consume", "inventory-sync")
        relay = self._proc("relay", "relay", "--metrics-port", str(free_port()))
        for proc in (sim, ingress, consumer, relay):
            proc.start()
        await ingress.wait_for("kafka_producer_ready")
        await consumer.wait_for("consumer_started")
        await relay.wait_for("relay_started")
        deadline = time.monotonic() + 30
        while "simulator listening on" not in sim.tail():
            assert time.monotonic() < deadline, sim.tail()
            await asyncio.sleep(0.05)
        for shop, _platform, product, variant in TEE:
            await self.seed(shop, {variant: 0}, {} if product is None else {variant: product})
        for shop, product, variant in CAP:
            await self.seed(shop, {variant: 0}, {} if product is None else {variant: product})

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop_quietly()

    # -- the simulator --------------------------------------------------------------------

    async def sim(self, method: str, path: str, body: object = None) -> object:
        async with httpx.AsyncClient(base_url=self.sim_url, timeout=10) as client:
            answer = await client.request(
                method, path, content=None if body is None else orjson.dumps(body)
            )
        answer.raise_for_status()
        return answer.json()

    async def seed(
        self, shop: str, variants: dict[str, int], products: dict[str, str] | None = None
    ) -> None:
        await self.sim("POST", "/_sim/stock", {"shop": shop, "variants": variants,
                                               "products": products or {}})  # fmt: skip

    async def levels(self, members: tuple[tuple[str, str], ...]) -> list[int]:
        """The simulator's stock of each (shop, variant)."""
        stock = await self.sim("GET", "/_sim/stock")
        assert isinstance(stock, dict)
        return [_variant_level(stock, shop, variant) for shop, variant in members]

    async def sale(self, shop: str, variant: str, quantity: int = 1) -> dict[str, object]:
        answer = await self.sim(
            "POST", "/_sim/sale", {"shop": shop, "variant": variant, "quantity": quantity}
        )
        assert isinstance(answer, dict)
        return answer

    async def writes(self) -> int:
        """Stock writes the simulator has answered so far (any status)."""
        log = await self.sim("GET", "/_sim/requests")
        assert isinstance(log, list)
        return sum(1 for e in log if e["method"] == "PUT")

    # -- the bridge -----------------------------------------------------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def groups(self) -> dict[str, Any]:
        done = self.cli("sync-groups", "show", "--json")
        assert 0 == done.returncode, done.stderr
        return {g["group"]: g for g in orjson.loads(done.stdout)["groups"]}

    async def converged(
        self, group: str, members: tuple[tuple[str, str], ...], expected: int, timeout: float = 60
    ) -> float:
        """Until the pool is ``expected``, every member shows it at the simulator and no write of
        the bridge waits for its echo; the seconds it took."""
        started = time.monotonic()
        while True:
            levels = await self.levels(members)
            if levels == [expected] * len(members):
                view = self.groups()[group]
                unechoed = [m["unechoed"] for m in view["members"]]
                if view["pool"] == expected and not any(unechoed):
                    return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"{group} not converged to {expected}: simulator {levels}, "
                    f"bridge {self.groups().get(group)}"
                )
            await asyncio.sleep(0.1)


def _variant_level(stock: Any, shop: str, variant: str) -> int:
    return int(stock[shop]["variants"][variant])


@pytest.fixture
async def sync_stack(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, kafka_topics: object
) -> AsyncIterator[SyncStack]:
    stack = SyncStack(tmp_path, kafka_bootstrap, topic_prefix)
    stack.write()
    try:
        yield stack
    finally:
        stack.stop()
