"""The crash and fault suite's stack: a config, real processes, and the summary table."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.config import Config, parse_config
from bridge.serve import free_port
from tests.reliability.harness import ALL_LOGS, Proc
from tests.reliability.traffic import RESULTS

PII_KEY = base64.b64encode(bytes(range(1, 33))).decode()
CB_SECRET = "reliability-cb-webhook-secret"
CB_TOKEN = "reliability-cb-api-token"
BENTO_TOKEN = "reliability-bento-webhook-token"
BENTO_CLIENT_SECRET = "reliability-bento-client-secret"
SECRETS = (PII_KEY, CB_SECRET, CB_TOKEN, BENTO_TOKEN, BENTO_CLIENT_SECRET)
# Customer PII of bridge/data/samples/cyberbiz/order.json that must never reach a log line.
PII = ("xiaoming.wang@example.com", "0912345678", "王小明", "市府路1號")


def config_text(bootstrap: str, prefix: str, dsn: str, sim_url: str) -> str:
    return f"""
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
linger_ms = 1

[ingress]
publish_timeout = 4.0
retry_after = 1

[outbox]
dsn = "{dsn}"

[relay]
poll_interval = 0.1

[privacy]
mode = "encrypt"
key = "{PII_KEY}"

[[shops]]
id = "cb-taipei"
platform = "cyberbiz"
api_base = "{sim_url}/cyberbiz/cb-taipei"
api_token = "{CB_TOKEN}"
webhook_secrets = ["{CB_SECRET}"]
rate_limit = 5.0

[[shops]]
id = "bento-bkk"
platform = "bentoweb"
api_base = "{sim_url}/bentoweb/bento-bkk"
client_id = "reliability-bento"
client_secret = "{BENTO_CLIENT_SECRET}"
webhook_secrets = ["{BENTO_TOKEN}"]
rate_limit = 5.0
"""


class Stack:
    """One scenario's folder, config file and processes; every process is stopped at the end."""

    def __init__(self, folder: Path, bootstrap: str, prefix: str) -> None:
        self.folder = folder
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.dsn = f"sqlite:///{folder / 'outbox.db'}"
        self.procs: list[Proc] = []

    @property
    def outbox_path(self) -> Path:
        return self.folder / "outbox.db"

    def write(self, dsn: str | None = None, bootstrap: str | None = None) -> Path:
        self.dsn = dsn or self.dsn
        self.bootstrap = bootstrap or self.bootstrap
        path = self.folder / "bridge.toml"
        path.write_text(config_text(self.bootstrap, self.prefix, self.dsn, self.sim_url))
        return path

    @property
    def config_path(self) -> Path:
        return self.folder / "bridge.toml"

    def config(self) -> Config:
        return parse_config(self.config_path.read_text(), {})

    def proc(self, name: str, *args: str) -> Proc:
        proc = Proc(name, [*args], self.folder)
        self.procs.append(proc)
        return proc

    def ingress(self, name: str = "ingress", port: int | None = None) -> tuple[Proc, str]:
        port = port or free_port()
        args = ["ingress", "--config", str(self.config_path), "--host", "127.0.0.1"]
        ops = ["--ops-port", str(free_port())]
        return self.proc(name, *args, "--port", str(port), *ops), f"http://127.0.0.1:{port}"

    def consumer(self, app: str = "commands") -> Proc:
        return self.proc(f"consume-{app}", "consume", app, "--config", str(self.config_path))

    def relay(self, name: str = "relay") -> Proc:
        metrics = ["--metrics-host", "127.0.0.1", "--metrics-port", str(free_port())]
        return self.proc(name, "relay", "--config", str(self.config_path), *metrics)

    def simulator(self, *faults: str) -> Proc:
        args = ["simulate", "--config", str(self.config_path), "--port", str(self.sim_port)]
        return self.proc("simulate", *args, *faults)


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> Iterator[Stack]:
    made = Stack(tmp_path, kafka_bootstrap, topic_prefix)
    made.write()
    try:
        yield made
    finally:
        for proc in made.procs:
            proc.stop_quietly()
        leaked = {
            str(log.name): [s for s in (*SECRETS, *PII) if s in log.read_text("utf-8", "replace")]
            for log in ALL_LOGS
            if log.exists() and log.is_relative_to(tmp_path)
        }
        assert {} == {name: found for name, found in leaked.items() if found}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write("crash and fault suite (tests/reliability):")
    write(
        "| scenario | sent | acknowledged | in Kafka | delivered | duplicates (same id) "
        "| unintended duplicates | lost | note |"
    )
    write("|---|---|---|---|---|---|---|---|---|")
    for r in RESULTS:
        delivered = "—" if r.delivered is None else str(r.delivered)
        write(
            f"| {r.scenario} | {r.sent} | {r.acknowledged} | {r.in_kafka} | {delivered} | "
            f"{r.duplicates} | {r.unintended} | {r.lost} | {r.note} |"
        )
