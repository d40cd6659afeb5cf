"""The real Kafka broker for the test session, and a fresh topic prefix per test.

``kafka_bootstrap`` uses, in this order: ``$KAFKA_BOOTSTRAP_SERVERS`` (a broker you run
yourself, e.g. ``commerce-bridge kafka start --detach --port 0``), testcontainers' Kafka when a Docker
engine answers, or a :class:`~bridge.devtools.kafka.local.LocalKafka` in a temporary directory.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bridge.config import KafkaConfig
from bridge.devtools.kafka.jars import LocalKafkaError
from bridge.devtools.kafka.local import LocalKafka
from bridge.kafka.topics import Topics, ensure_topics
from bridge.log import get_logger

log = get_logger(__name__)

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Apache Kafka 3.9, KRaft


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``host:port`` of a real broker, started once per session and stopped at its end."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
    elif _docker_answers():
        yield from _container()
    else:
        yield from _local_broker(request, tmp_path_factory)


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so topics and consumer groups never collide."""
    return f"t{uuid4().hex[:10]}"


@pytest.fixture
async def kafka_topics(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Topics]:
    """The eight commerce-bridge topics under this test's prefix, created and ready (3 partitions);
    deleted afterwards, so a long session never piles thousands of partitions onto the broker."""
    topics = await create_topics(kafka_bootstrap, topic_prefix)
    yield topics
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(list(topics.all()))
    except KafkaError as exc:  # best effort: a leftover topic costs memory, not correctness
        log.warning("test_topics_not_deleted", prefix=topic_prefix, error=str(exc))
    finally:
        await admin.close()


async def create_topics(bootstrap_servers: str, prefix: str, partitions: int = 3) -> Topics:
    """Create the commerce-bridge topics under ``prefix`` and return their names."""
    cfg = KafkaConfig(bootstrap_servers=bootstrap_servers, topic_prefix=prefix)
    await ensure_topics(cfg, partitions=partitions)
    return Topics(prefix)


def _docker_answers() -> bool:
    """Whether a Docker engine answers ``GET /_ping`` within 2 s (what docker's ping() asks).

    Asked directly over the socket: docker-py leaks a socket when the engine is absent, which
    warnings-as-errors would turn into a test failure.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    scheme, _, rest = host.partition("://")
    try:
        if scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = rest
        elif scheme == "tcp":
            name, _, port = rest.rstrip("/").rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port))
        else:
            return False
        with sock:
            sock.settimeout(2.0)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = sock.recv(64).split(b"\r\n", 1)[0]
    except (OSError, ValueError):
        return False
    return status.startswith(b"HTTP/1.") and status.split()[1:2] == [b"200"]


def _container() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield str(container.get_bootstrap_server())


def _local_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    try:
        bootstrap = broker.start()
    except LocalKafkaError as exc:
        pytest.fail(f"the local Kafka broker did not start: {exc}", pytrace=False)
    failed_before = request.session.testsfailed
    try:
        yield bootstrap
    finally:
        broker.stop()
        if request.session.testsfailed > failed_before:
            _report(
                request, f"Kafka broker log ({broker.log_path}), last lines:\n{broker.log_tail()}"
            )


def _report(request: pytest.FixtureRequest, text: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(text)
