"""The whole pipeline as real processes for the sync and soak benchmarks: the simulator (posting
its webhooks to the ingress), the ingress, ``consume inventory-sync``, the relay, a SQLite outbox
in a temporary directory and Kafka (``$KAFKA_BOOTSTRAP_SERVERS``, else a local broker).

Shops: two Cyberbiz (``cb-taipei``, ``cb-tainan``) and one BentoWeb (``bento-bkk``); sync group
``g`` has the variants ``variant(shop, g)`` (products ``product(shop, g)`` on Cyberbiz).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from procs import Child, log, prometheus_samples, wait_http

from bridge.config import Config, KafkaConfig, load_config
from bridge.devtools.kafka.local import LocalKafka, free_ports
from bridge.kafka.topics import ensure_topics

PYTHON = sys.executable
CB_SHOPS = ("cb-taipei", "cb-tainan")
BENTO = "bento-bkk"
SHOPS = (*CB_SHOPS, BENTO)
SECRET = "bench-webhook-secret"  # noqa: S105 -- throwaway secrets for the loopback simulator
TOKEN = "bench-api-token"  # noqa: S105
CLIENT_SECRET = "bench-client-secret"  # noqa: S105
RATE_LIMIT = 5.0


def variant(shop: str, group: int) -> str:
    return str((SHOPS.index(shop) + 5) * 100_000 + group)


def product(shop: str, group: int) -> str:
    return str((SHOPS.index(shop) + 1) * 10_000 + group)


def group_id(group: int) -> str:
    return f"g{group:04}"


def _shop_lines(sim: str) -> list[str]:
    lines: list[str] = []
    for shop in CB_SHOPS:
        lines += [
            "[[shops]]", f'id = "{shop}"', 'platform = "cyberbiz"',
            f'api_base = "{sim}/cyberbiz/{shop}"', f'api_token = "{TOKEN}"',
            f'webhook_secrets = ["{SECRET}"]', f"rate_limit = {RATE_LIMIT}",
        ]  # fmt: skip
    lines += [
        "[[shops]]", f'id = "{BENTO}"', 'platform = "bentoweb"',
        f'api_base = "{sim}/bentoweb/{BENTO}"', 'client_id = "bench-bento"',
        f'client_secret = "{CLIENT_SECRET}"', f'webhook_secrets = ["{SECRET}"]',
        f"rate_limit = {RATE_LIMIT}",
    ]  # fmt: skip
    return lines


def config_text(sim: str, dsn: str, bootstrap: str, prefix: str, groups: int) -> str:
    lines = [
        "[kafka]", f'bootstrap_servers = "{bootstrap}"', f'topic_prefix = "{prefix}"',
        "linger_ms = 1", "[ingress]", "max_event_age = 0", "[outbox]", f'dsn = "{dsn}"',
        "[relay]", "poll_interval = 0.05", "[privacy]", 'mode = "redact"',
        "[inventory_sync]", "reconcile_interval = 0", *_shop_lines(sim),
    ]  # fmt: skip
    for g in range(groups):
        members = [
            f'{{ shop = "{s}", product = "{product(s, g)}", variant = "{variant(s, g)}" }}'
            for s in CB_SHOPS
        ]
        members.append(f'{{ shop = "{BENTO}", variant = "{variant(BENTO, g)}" }}')
        lines += ["[[sync_groups]]", f'id = "{group_id(g)}"', f"members = [{', '.join(members)}]"]
    return "\n".join(lines) + "\n"


PORTS = ("sim_port", "ingress_port", "ops_port", "consumer_port", "relay_port")


@dataclass
class Stack:
    """The processes of one benchmark run and how to reach them."""

    tmp: Path
    bootstrap: str
    groups: int
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")
    sim_port: int = 0  # 0: picked at construction, with the others
    ingress_port: int = 0
    ops_port: int = 0
    consumer_port: int = 0
    relay_port: int = 0
    children: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Distinct ports, held open together while picked: one free_port() after another can
        # hand out the same port twice, and then a process's readiness check reached another's.
        unset = [name for name in PORTS if not getattr(self, name)]
        for name, port in zip(unset, free_ports(len(unset)), strict=True):
            setattr(self, name, port)

    def dead(self) -> dict[str, str]:
        """The processes that exited, with the end of their logs (a run must not go on without)."""
        return {name: c.tail() for name, c in self.children.items() if not c.alive()}

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def dsn(self) -> str:
        return f"sqlite:///{self.tmp / 'outbox.db'}"

    @property
    def config_path(self) -> Path:
        return self.tmp / "bridge.toml"

    def config(self) -> Config:
        return load_config(str(self.config_path))

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items()}

    def _start(self, name: str, argv: Sequence[str], ready: str) -> None:
        base = [PYTHON, "-m", "bridge", "--log-level", "warning", "--log-format", "json"]
        child = Child(name, [*base, *argv], self.tmp / f"{name}.log")
        self.children[name] = child
        wait_http(ready, child.alive, timeout=90)

    def start(self) -> None:
        text = config_text(self.sim, self.dsn, self.bootstrap, self.prefix, self.groups)
        self.config_path.write_text(text)
        asyncio.run(ensure_topics(KafkaConfig(bootstrap_servers=self.bootstrap,
                                              topic_prefix=self.prefix)))  # fmt: skip
        cfg = ["--config", str(self.config_path)]
        local = ["--metrics-host", "127.0.0.1"]
        subprocess.run([PYTHON, "-m", "bridge", "outbox", "list", *cfg], check=True,
                       capture_output=True)  # fmt: skip
        self._start(
            "ingress",
            ["ingress", *cfg, "--host", "127.0.0.1", "--port", str(self.ingress_port),
             "--ops-port", str(self.ops_port)],
            f"http://127.0.0.1:{self.ops_port}/readyz",
        )  # fmt: skip
        self._start(
            "simulator",
            ["simulate", *cfg, "--port", str(self.sim_port), "--webhooks-to", self.ingress],
            f"{self.sim}/_sim/health",
        )
        self._start(
            "consumer",
            ["consume", "inventory-sync", *cfg, "--metrics-port", str(self.consumer_port), *local],
            f"http://127.0.0.1:{self.consumer_port}/readyz",
        )
        self._start(
            "relay",
            ["relay", *cfg, "--metrics-port", str(self.relay_port), *local],
            f"http://127.0.0.1:{self.relay_port}/readyz",
        )

    def stop(self) -> None:
        for name in ("simulator", "ingress", "consumer", "relay"):
            child = self.children.get(name)
            if child is None:
                continue
            child.stop()
            if child.proc.returncode not in (0, None, -15):
                log(f"{name} exited {child.proc.returncode}:\n{child.tail()}")

    def metric(self, port: int, name: str) -> float:
        """The sum over labels of one metric of a process's /metrics."""
        with httpx.Client(timeout=5.0) as http:
            text = http.get(f"http://127.0.0.1:{port}/metrics").text
        return sum(v for n, _labels, v in prometheus_samples(text) if n == name)


@contextlib.contextmanager
def running_stack(tmp: Path, groups: int) -> Iterator[Stack]:
    """A started stack (and a local broker without ``$KAFKA_BOOTSTRAP_SERVERS``), stopped after."""
    broker: LocalKafka | None = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap:
        log("starting a local Kafka broker")
        broker = LocalKafka(tmp / "kafka")
        bootstrap = broker.start()
    stack = Stack(tmp, bootstrap, groups)
    try:
        log(f"starting simulator, ingress, consumer, relay ({groups} sync groups)")
        stack.start()
        yield stack
    finally:
        stack.stop()
        if broker is not None:
            broker.stop()


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sync_groups_show(config: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [PYTHON, "-m", "bridge", "sync-groups", "show", "--json", "--config", str(config)],
        capture_output=True, check=True,
    )  # fmt: skip
    doc = orjson.loads(done.stdout)
    groups = doc["groups"] if isinstance(doc, dict) else doc
    return list(groups)


def sync_groups_set(config: Path, group: str, quantity: int) -> None:
    subprocess.run(
        [PYTHON, "-m", "bridge", "sync-groups", "set", group, str(quantity), "--config",
         str(config)],
        capture_output=True, check=True,
    )  # fmt: skip
