"""A platform is one package: Acme, defined in the test suite, goes through ingress and relay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge import platforms
from bridge.commands import SetStock, parse_command, to_write
from bridge.config import Config
from bridge.devtools.sign import sign_request
from bridge.errors import ConfigError
from bridge.ingress.app import create_app
from bridge.kafka.publisher import KafkaPublisher
from bridge.kafka.topics import Topics
from bridge.log import sensitive_keys
from bridge.outbox.store import Status, open_store
from bridge.relay import Relay
from bridge.serve import running_server
from bridge.targets import StockTarget, TargetCodec, TargetField
from tests.ingress.test_kafka import read_topic, wait_ready
from tests.platforms import acme
from tests.relay.support import add, all_in, eventually
from tests.support import make_config

pytestmark = pytest.mark.timeout(90)

ACME_SHOP = """
[[shops]]
id = "acme-1"
platform = "acme"
api_base = "{api}"
api_token = "acme-api-token"
webhook_secrets = ["acme-hook-secret"]
rate_limit = 50.0

[outbox]
dsn = "sqlite:///{db}"
"""


@pytest.fixture
def acme_registered() -> Iterator[None]:
    """Acme is a registered platform for the duration of one test."""
    platforms.register(acme.PLUGIN)
    try:
        yield
    finally:
        platforms.unregister(acme.NAME)


@dataclass
class AcmeApi:
    """The Acme API of the test: remembers every PUT and wakes the test on the first."""

    levels: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    written: asyncio.Event = field(default_factory=asyncio.Event)

    async def bins(self, request: Request) -> Response:
        bin_id = request.path_params["bin"]
        if request.method == "PUT":
            self.levels[bin_id] = orjson.loads(await request.body())["level"]
            self.calls.append((bin_id, request.headers["authorization"], request.headers.get("idempotency-key")))  # fmt: skip
            self.written.set()
        return Response(orjson.dumps({"level": self.levels.get(bin_id, 0)}), 200)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bins/{bin}", self.bins, methods=["GET", "PUT"])])


def acme_config(prefix: str, bootstrap: str, api: str, db: Path) -> Config:
    return make_config(prefix, bootstrap, ACME_SHOP.format(api=api, db=db))


def test_without_registration_acme_is_an_unknown_platform() -> None:
    """Until Acme registers, a shop on it is a config error naming the known platforms."""
    with pytest.raises(ConfigError) as info:
        acme_config("p", "127.0.0.1:9", "http://127.0.0.1:1", Path("/tmp/x.db"))  # noqa: S108
    assert ("shops[3].platform", True) == (info.value.key, "cyberbiz" in str(info.value))


@pytest.mark.kafka
@pytest.mark.usefixtures("acme_registered")
async def test_acme_webhook_goes_through_the_real_ingress_to_kafka(
    kafka_bootstrap: str, kafka_topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """A signed Acme webhook is verified, normalised and published on the variants topic."""
    config = acme_config(topic_prefix, kafka_bootstrap, "http://127.0.0.1:1", tmp_path / "o.db")
    body = orjson.dumps({"bin": "B-7", "level": 12, "at": "2026-12-01T10:00:00Z"})
    suffix, headers = sign_request(config.shops["acme-1"], body, "stock.changed", time.time())
    async with running_server(create_app(config)) as base:
        await wait_ready(base)
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{base}/webhooks/acme-1{suffix}", content=body, headers=headers)  # fmt: skip
            forged = await http.post(
                f"{base}/webhooks/acme-1", content=body, headers={**headers, "X-Acme-Token": "no"}
            )
    (record,) = await read_topic(config, kafka_topics.variants, 1)
    value = orjson.loads(record.value)
    ce_source = dict(record.headers)["ce_source"].decode()
    assert (202, 401, "acme", "B-7", 12, "/acme/acme-1") == (
        response.status_code, forged.status_code, value["platform"], value["variant_id"],
        value["inventory_quantity"], ce_source,
    )  # fmt: skip


@pytest.mark.kafka
@pytest.mark.usefixtures("acme_registered")
async def test_acme_write_goes_through_the_real_relay(
    kafka_bootstrap: str, kafka_topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """A set_stock command on an Acme bin is stored, sent by the relay, and read back."""
    api = AcmeApi()
    async with running_server(api.app()) as api_url:
        config = acme_config(topic_prefix, kafka_bootstrap, api_url, tmp_path / "outbox.db")
        raw = orjson.dumps({
            "id": "c-1", "shop": "acme-1", "kind": "set_stock", "target": {"acme_bin": "B-7"},
            "payload": {"quantity": 5}, "idempotency_key": "k-1",
        })  # fmt: skip
        command = parse_command(raw, config.shops)
        write = to_write(command)
        store = await open_store(config.outbox.dsn)
        publisher = KafkaPublisher(config.kafka, client_id="acme-relay")
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                await store.migrate()
                await publisher.start(wait=True)
                [row_id] = await add(store, [write])
                clients = {sid: platforms.client_for(s, http) for sid, s in config.shops.items()}
                relay = Relay(config, store, clients, publisher, owner="acme-test")
                stop = asyncio.Event()
                task = asyncio.create_task(relay.run(stop))
                async with asyncio.timeout(30):
                    await api.written.wait()
                await eventually(lambda: all_in(store, [row_id], Status.DONE), what="row done")
                stop.set()
                await task
                level = await clients["acme-1"].get_stock(command.target)
            finally:
                await publisher.stop()
                await store.close()
    assert (
        StockTarget("bin", "B-7"), "bin:B-7", [("B-7", "Bearer acme-api-token", "k-1")], 5,
    ) == (command.target, write.target, api.calls, level)  # fmt: skip


@pytest.mark.usefixtures("acme_registered")
def test_registered_platform_facts_reach_config_logging_and_commands() -> None:
    """Acme's name, secret header and target field are known exactly while it is registered."""
    assert ("acme", True, "acme_bin") == (
        platforms.names()[-1], "x-acme-token" in sensitive_keys(),
        platforms.target_codec().names[-1],
    )  # fmt: skip


def test_unregistered_platform_leaves_no_trace() -> None:
    """After unregistering, Acme's header and field are gone from logging and commands."""
    platforms.register(acme.PLUGIN)
    platforms.unregister(acme.NAME)
    assert (False, False, False) == (
        acme.NAME in platforms.names(), "x-acme-token" in sensitive_keys(),
        "acme_bin" in platforms.target_codec().names,
    )  # fmt: skip


def test_a_field_with_another_kind_is_refused() -> None:
    """Registering a platform whose target field means another kind elsewhere is an error."""
    clash = replace(acme.PLUGIN, targets=TargetCodec((TargetField("variant", "bin", "bins"),)))
    with pytest.raises(ValueError, match="'variant' is already kind 'variant'"):
        platforms.register(clash)
    assert acme.NAME not in platforms.names()


def test_set_stock_to_write_round_trip_keeps_the_key_format() -> None:
    """Group and variant targets keep their outbox keys (existing rows keep working)."""
    group = to_write(SetStock("c", "cb-taipei", StockTarget("group", "77"), 1, "k"))
    variant = to_write(SetStock("c", "cb-taipei", StockTarget("variant", "5", "1"), 1, "k"))
    assert ("group:77", {"cyberbiz_group": "77"}, "variant:5", "1") == (
        group.target, {k: v for k, v in group.payload.items() if k == "cyberbiz_group"},
        variant.target, variant.payload["product"],
    )  # fmt: skip


def test_a_name_registers_once() -> None:
    """Registering a second platform under a taken name is an error; the first stays."""
    first = platforms.get("cyberbiz")
    with pytest.raises(ValueError, match="already registered"):
        platforms.register(replace(acme.PLUGIN, name="cyberbiz"))
    assert first is platforms.get("cyberbiz")


def test_webhooks_of_another_platform_are_refused() -> None:
    """A plugin whose webhook side carries another platform's name does not register."""
    with pytest.raises(ValueError, match="webhooks of 'acme'"):
        platforms.register(replace(acme.PLUGIN, name="acme-2"))
    assert "acme-2" not in platforms.names()
