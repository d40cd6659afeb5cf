"""SASL (SCRAM-SHA-512) and TLS to Kafka: the bridge's clients against a local broker with secure
listeners, as a managed cluster offers them (plaintext SASL, and SASL over TLS with a private CA)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog
import structlog.testing
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.config import KafkaConfig, parse_config
from bridge.devtools.kafka.jars import LocalKafkaError
from bridge.devtools.kafka.local import LocalKafka, SecureListeners
from bridge.errors import ConfigError
from bridge.kafka.publisher import KafkaPublisher
from bridge.kafka.topics import Topics, client_options, ensure_topics

pytestmark = pytest.mark.kafka

USER, PASSWORD = "bridge", "s3cret-scram-password"


def _pki(folder: Path) -> tuple[Path, Path]:
    """A private CA and a broker certificate for 127.0.0.1: (broker PEM with key, CA PEM)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bridge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    broker_pem = folder / "broker.pem"
    broker_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return broker_pem, ca_pem


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, Path]]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    broker_pem, ca_pem = _pki(folder)
    broker = LocalKafka(
        folder / "broker", secure=SecureListeners({USER: PASSWORD}, tls_pem=broker_pem)
    )
    try:
        broker.start()
    except LocalKafkaError as exc:
        pytest.fail(f"the secure Kafka broker did not start: {exc}", pytrace=False)
    try:
        yield broker, ca_pem
    finally:
        broker.stop()


def _config(broker: LocalKafka, protocol: str, ca: Path | None, password: str) -> KafkaConfig:
    assert broker.secure is not None
    port = broker.secure.sasl_ssl_port if protocol == "SASL_SSL" else broker.secure.sasl_port
    return KafkaConfig(
        bootstrap_servers=f"127.0.0.1:{port}",
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        security_protocol=protocol,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password=password,
        ssl_cafile=None if ca is None else str(ca),
    )


async def _round_trip(cfg: KafkaConfig) -> bytes:
    """Create the topics, publish one record with acks=all and read it back, all over ``cfg``."""
    await ensure_topics(cfg, partitions=1)
    topic = Topics.from_config(cfg).orders
    publisher = KafkaPublisher(cfg, client_id="secure-test")
    await publisher.start(wait=True)
    try:
        await publisher.publish(topic, b"k", b'{"secure": true}', [], timeout=10.0)
    finally:
        await publisher.stop()
    consumer = AIOKafkaConsumer(
        topic, **client_options(cfg), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    value: bytes = record.value
    return value


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
async def test_scram_sha_512_publishes_and_consumes(
    secure_broker: tuple[LocalKafka, Path], protocol: str
) -> None:
    """With SCRAM-SHA-512 credentials (and the private CA for TLS) topics, publish and consume work."""
    broker, ca = secure_broker
    cfg = _config(broker, protocol, ca if protocol == "SASL_SSL" else None, PASSWORD)
    assert b'{"secure": true}' == await _round_trip(cfg)


async def test_a_wrong_password_never_connects(
    secure_broker: tuple[LocalKafka, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong SCRAM password: the connect attempt fails with an authentication error and the
    publisher stays not ready (no silent fallback)."""
    broker, _ca = secure_broker
    publisher = KafkaPublisher(_config(broker, "SASL_PLAINTEXT", None, "wrong"), client_id="bad")
    with structlog.testing.capture_logs() as logs:
        await publisher.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while not any(e["event"] == "kafka_connect_failed" for e in logs):
                assert loop.time() < deadline, "no failed connect attempt within 20 s"
                await asyncio.sleep(0.05)
            assert not publisher.ready
        finally:
            await publisher.stop()
    refused = [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")]
    assert any("SaslAuthenticationFailed" in message for message in refused), refused


async def test_tls_without_the_ca_is_refused(
    secure_broker: tuple[LocalKafka, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """SASL_SSL against a certificate the system does not trust fails on verification."""
    broker, ca = secure_broker
    untrusted = replace(_config(broker, "SASL_SSL", ca, PASSWORD), ssl_cafile=None)
    with pytest.raises(KafkaError):
        await asyncio.wait_for(ensure_topics(untrusted, partitions=1), 30)
    refused = [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")]
    assert any("CERTIFICATE_VERIFY_FAILED" in message for message in refused), refused


def test_ssl_cafile_must_exist(tmp_path: Path) -> None:
    """kafka.ssl_cafile naming a missing file is a configuration error that names the key."""
    text = f'[kafka]\nsecurity_protocol = "SSL"\nssl_cafile = "{tmp_path / "nope.pem"}"\n'
    with pytest.raises(ConfigError, match=r"kafka\.ssl_cafile"):
        parse_config(text, {})
