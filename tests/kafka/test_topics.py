"""Topic names, client options, and creating the topics on the real broker."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bridge import clitools
from bridge.config import KafkaConfig
from bridge.kafka import cli
from bridge.kafka.topics import Topics, client_options, ensure_topics


def stdout_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the command printed (unconfigured structlog may add its own lines before)."""
    return capsys.readouterr().out.splitlines()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="commerce-bridge")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def partition_counts(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


# -- names -------------------------------------------------------------------------------------


def test_topic_names_follow_the_prefix() -> None:
    """The eight topics of ARCHITECTURE §4, in its order, under the configured prefix."""
    expected = (
        "shop.orders", "shop.products", "shop.variants", "shop.customers", "shop.other",
        "shop.commands", "shop.deliveries", "shop.dlq",
    )  # fmt: skip
    topics = Topics("shop")
    assert expected == topics.all()
    assert expected == (
        topics.orders, topics.products, topics.variants, topics.customers, topics.other,
        topics.commands, topics.deliveries, topics.dlq,
    )  # fmt: skip


def test_default_prefix_is_commerce() -> None:
    """Without a prefix the topics are commerce.*, as in bridge.toml's default."""
    assert "commerce.orders" == Topics().orders
    assert Topics("commerce") == Topics.from_config(KafkaConfig())


@pytest.mark.parametrize(
    ("entity", "topic"),
    [
        ("order", "commerce.orders"),
        ("product", "commerce.products"),
        ("variant", "commerce.variants"),
        ("customer", "commerce.customers"),
        ("other", "commerce.other"),
        ("app", "commerce.other"),
        ("orders", "commerce.other"),
    ],
)
def test_for_entity_maps_known_entities_and_sends_the_rest_to_other(
    entity: str, topic: str
) -> None:
    """Canonical entities have their own topic; anything else lands on <prefix>.other."""
    assert topic == Topics("commerce").for_entity(entity)


# -- client options ----------------------------------------------------------------------------


def test_client_options_plaintext() -> None:
    """A plain cluster needs only the bootstrap servers and the protocol."""
    cfg = KafkaConfig(bootstrap_servers="a:9092,b:9092")
    expected = {"bootstrap_servers": "a:9092,b:9092", "security_protocol": "PLAINTEXT"}
    assert expected == client_options(cfg)


def test_client_options_sasl_ssl() -> None:
    """A managed cluster gets SASL credentials and a TLS context verifying the server."""
    cfg = KafkaConfig(
        bootstrap_servers="k:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="bridge",
        sasl_password="pw",
    )
    options = client_options(cfg)
    context = options.pop("ssl_context")
    expected = {
        "bootstrap_servers": "k:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "bridge",
        "sasl_plain_password": "pw",
    }
    assert expected == options
    assert ssl.CERT_REQUIRED == context.verify_mode


# -- on the broker -----------------------------------------------------------------------------


@pytest.mark.kafka
async def test_ensure_creates_all_eight_with_the_requested_partitions(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """ensure_topics creates every missing topic with the partition count asked for."""
    cfg = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    names = list(Topics(topic_prefix).all())
    assert names == await ensure_topics(cfg, partitions=2)
    assert dict.fromkeys(names, 2) == await partition_counts(kafka_bootstrap, names)


@pytest.mark.kafka
async def test_ensure_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    """A second ensure creates nothing and keeps existing topics as they are."""
    cfg = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=1)
    first = await ensure_topics(cfg, names=[f"{topic_prefix}.orders"])
    assert [f"{topic_prefix}.orders"] == first
    names = list(Topics(topic_prefix).all())
    assert names[1:] == await ensure_topics(cfg, partitions=4)
    assert [] == await ensure_topics(cfg, partitions=4)
    expected = {name: 1 if name.endswith(".orders") else 4 for name in names}
    assert expected == await partition_counts(kafka_bootstrap, names)


@pytest.mark.kafka
def test_cli_topics_ensure_uses_the_config_file(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`commerce-bridge topics ensure --config F` creates the topics under F's prefix and lists them."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[kafka]\nbootstrap_servers = "{kafka_bootstrap}"\ntopic_prefix = "{topic_prefix}"\n'
        '[privacy]\nmode = "passthrough"\n'
    )
    args = parse("topics", "ensure", "--config", str(config), "--partitions", "1")
    assert 0 == args.func(args)
    names = Topics(topic_prefix).all()
    assert [f"created {name}" for name in names] == stdout_lines(capsys)[-8:]
    assert 0 == args.func(args)
    assert [f"exists  {name}" for name in names] == stdout_lines(capsys)[-8:]


def test_cli_topics_ensure_reports_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing config file is exit code 2 with the reason on stderr, nothing on stdout."""
    args = parse("topics", "ensure", "--config", str(tmp_path / "nope.toml"))
    assert 2 == clitools.invoke(args.func, args)
    captured = capsys.readouterr()
    assert ("", True) == (captured.out, "does not exist" in captured.err)


def test_cli_topics_ensure_reports_an_unreachable_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When no broker answers, ensure exits 1 and names the bootstrap address."""
    config = tmp_path / "bridge.toml"
    config.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:9"\n[privacy]\nmode = "redact"\n')
    args = parse("topics", "ensure", "--config", str(config))
    assert 1 == clitools.invoke(args.func, args)
    assert "Kafka at 127.0.0.1:9" in capsys.readouterr().err


async def topic_config(bootstrap: str, name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    (resource,) = response.resources
    return {entry[0]: entry[1] for entry in resource[4]}


@pytest.mark.kafka
async def test_ensure_sizes_records_for_the_body_limit_and_sets_min_insync(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """New topics take records of 2 x max_body_bytes + 64 KiB and need min(2, RF) in-sync
    replicas (1 on the one-broker test cluster)."""
    cfg = KafkaConfig(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    await ensure_topics(cfg, names=[f"{topic_prefix}.orders"], max_body_bytes=3 * 1024 * 1024)
    settings = await topic_config(kafka_bootstrap, f"{topic_prefix}.orders")
    expected = {"max.message.bytes": str(6 * 1024 * 1024 + 64 * 1024), "min.insync.replicas": "1"}
    assert expected == {k: settings[k] for k in expected}


def test_min_insync_defaults_to_two_when_replicated() -> None:
    """min.insync.replicas: min(2, replication factor) unless configured."""
    assert (1, 2, 2, 3) == (
        KafkaConfig(replication_factor=1).min_isr,
        KafkaConfig(replication_factor=2).min_isr,
        KafkaConfig(replication_factor=3).min_isr,
        KafkaConfig(replication_factor=3, min_insync_replicas=3).min_isr,
    )
