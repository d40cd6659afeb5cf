"""The local broker harness: jar cache, tools, start/stop, persistence, and the CLI around it."""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bridge.config import KafkaConfig
from bridge.devtools.kafka import cli
from bridge.devtools.kafka.jars import (
    DEFAULT_VERSION,
    MARKER,
    LocalKafkaError,
    ToolMissing,
    cache_dir,
    cache_root,
    cached_libs,
    fetch,
    find_java,
)
from bridge.devtools.kafka.local import (
    LocalKafka,
    new_cluster_id,
    running_broker,
    server_properties,
    stop_broker,
)
from bridge.kafka.topics import Topics, client_options, ensure_topics

ROOT = Path(__file__).parents[2]


@pytest.fixture
def warm_libs(kafka_bootstrap: str) -> Path:
    """The cached jars, warmed by the session broker; skip rather than download them again."""
    libs = cached_libs(DEFAULT_VERSION)
    if libs is None:
        pytest.skip("the jar cache is cold (the session broker did not come from LocalKafka)")
    return libs


def path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only links to ``tools`` (as found on the real PATH)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        assert real is not None, f"{tool} is not installed"
        (folder / tool).symlink_to(real)
    return str(folder)


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.splitlines()[-1]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="commerce-bridge")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


# -- pure parts --------------------------------------------------------------------------------


def test_cache_dir_honours_override_then_xdg_then_home(tmp_path: Path) -> None:
    """BRIDGE_KAFKA_CACHE wins over XDG_CACHE_HOME, which wins over ~/.cache."""
    override = {"BRIDGE_KAFKA_CACHE": str(tmp_path / "o"), "XDG_CACHE_HOME": str(tmp_path / "x")}
    assert tmp_path / "o" / "4.1.1" == cache_dir("4.1.1", override)
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "x")}
    assert tmp_path / "x" / "commerce-bridge" / "kafka" == cache_root(xdg)
    assert Path.home() / ".cache" / "commerce-bridge" / "kafka" == cache_root({})


def test_fetch_without_marker_is_not_used(tmp_path: Path) -> None:
    """Jars without the marker file (a fetch that never finished) do not count as cached."""
    env = {"BRIDGE_KAFKA_CACHE": str(tmp_path)}
    (tmp_path / "4.1.1" / "libs").mkdir(parents=True)
    (tmp_path / "4.1.1" / "libs" / "kafka_2.13-4.1.1.jar").write_bytes(b"half")
    assert None is cached_libs("4.1.1", env)
    (tmp_path / "4.1.1" / MARKER).write_text("{}")
    assert tmp_path / "4.1.1" / "libs" == cached_libs("4.1.1", env)


def test_version_must_look_like_a_version() -> None:
    """A version that could escape the cache directory or the pom is refused."""
    with pytest.raises(LocalKafkaError, match="not a Kafka version"):
        cache_dir("../4.1.1")


def test_cluster_id_is_22_chars_of_base64url() -> None:
    """Cluster ids look like `kafka-storage random-uuid` output and never start with '-'."""
    ids = {new_cluster_id() for _ in range(200)}
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert 200 == len(ids)
    assert {22} == {len(i) for i in ids}
    assert set() == {i for i in ids if not set(i) <= alphabet or i.startswith("-")}


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    """Broker and controller listen on 127.0.0.1 ports given; internal topics need one replica."""
    text = server_properties(log_dirs=tmp_path, port=1111, controller_port=2222, partitions=3)
    props = dict(line.split("=", 1) for line in text.splitlines())
    expected = {
        "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://127.0.0.1:1111,CONTROLLER://127.0.0.1:2222",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:1111",
        "controller.quorum.voters": "1@127.0.0.1:2222",
        "log.dirs": str(tmp_path),
        "num.partitions": "3",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    assert expected == {key: props[key] for key in expected}


# -- tools and cache ---------------------------------------------------------------------------


def test_missing_java_names_the_package(tmp_path: Path) -> None:
    """Without java on PATH the error says Java 17+ is needed and which package to install."""
    env = {"PATH": path_with(tmp_path), "BRIDGE_KAFKA_CACHE": str(tmp_path / "cache")}
    with pytest.raises(ToolMissing) as caught:
        fetch(DEFAULT_VERSION, env=env)
    assert "java" == caught.value.tool
    assert str(caught.value).startswith(
        "Java 17+ is required to run the local Kafka broker: install openjdk-17-jre-headless"
    )
    assert not (tmp_path / "cache" / DEFAULT_VERSION).exists()


def test_missing_maven_names_the_package(tmp_path: Path) -> None:
    """With java but no mvn on PATH, a cold cache fails with a message naming Maven."""
    env = {"PATH": path_with(tmp_path, "java"), "BRIDGE_KAFKA_CACHE": str(tmp_path / "cache")}
    with pytest.raises(ToolMissing) as caught:
        fetch(DEFAULT_VERSION, env=env)
    assert "mvn" == caught.value.tool
    assert "Maven is required to fetch the Kafka broker jars" in str(caught.value)


def test_missing_java_stops_the_broker_start(tmp_path: Path) -> None:
    """LocalKafka.start() on a machine without java fails with the same clear error."""
    env = {"PATH": path_with(tmp_path), "BRIDGE_KAFKA_CACHE": str(tmp_path / "cache")}
    with pytest.raises(ToolMissing, match="install openjdk-17-jre-headless"):
        LocalKafka(tmp_path / "data", env=env).start()


@pytest.mark.kafka
def test_warm_cache_needs_neither_maven_nor_network(tmp_path: Path, warm_libs: Path) -> None:
    """A second fetch returns the cached jars through the marker file, with no mvn on PATH."""
    libs = warm_libs
    env = {"PATH": path_with(tmp_path, "java"), **_cache_env()}
    assert libs == fetch(DEFAULT_VERSION, env=env)
    assert (libs.parent / MARKER).is_file()
    assert (libs / f"kafka_2.13-{DEFAULT_VERSION}.jar").is_file()
    assert find_java(env).endswith("java")


def _cache_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("BRIDGE_KAFKA_CACHE", "XDG_CACHE_HOME")}


# -- the running broker ------------------------------------------------------------------------


@pytest.mark.kafka
async def test_produce_consume_round_trip(kafka_bootstrap: str, kafka_topics: Topics) -> None:
    """A record produced with acks=all comes back to a consumer with its key, value and headers."""
    options = client_options(KafkaConfig(bootstrap_servers=kafka_bootstrap))
    producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            kafka_topics.orders, b'{"id": "1"}', key=b"shop:1", headers=[("ce_id", b"e1")]
        )
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        kafka_topics.orders,
        **options,
        group_id=f"{kafka_topics.prefix}-g",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    expected = (sent.partition, sent.offset, b"shop:1", b'{"id": "1"}', [("ce_id", b"e1")])
    actual = (record.partition, record.offset, record.key, record.value, list(record.headers))
    assert expected == actual


@pytest.mark.kafka
async def test_data_dir_survives_restart_on_new_ports(tmp_path: Path, warm_libs: Path) -> None:
    """A formatted data dir is reused: a topic created before a stop exists after the restart."""
    broker = LocalKafka(tmp_path / "kafka")
    first = await asyncio.to_thread(broker.start)
    try:
        meta = (tmp_path / "kafka" / "data" / "meta.properties").read_text()
        await ensure_topics(
            KafkaConfig(bootstrap_servers=first, topic_prefix="keep"), names=["keep.me"]
        )
        running = running_broker(tmp_path / "kafka")
        assert running is not None
        assert first == running.bootstrap_servers
    finally:
        broker.stop()
    assert None is running_broker(tmp_path / "kafka")
    broker = LocalKafka(tmp_path / "kafka")
    second = await asyncio.to_thread(broker.start)
    try:
        created = await ensure_topics(
            KafkaConfig(bootstrap_servers=second, topic_prefix="keep"), names=["keep.me"]
        )
        assert [] == created
        assert meta == (tmp_path / "kafka" / "data" / "meta.properties").read_text()
    finally:
        broker.stop()


@pytest.mark.kafka
def test_second_start_on_the_same_data_dir_is_refused(tmp_path: Path, warm_libs: Path) -> None:
    """Two brokers never share a data dir: the second start names the running one."""
    with LocalKafka(tmp_path / "kafka") as broker:
        with pytest.raises(LocalKafkaError, match=f"already running \\(pid {broker.pid}"):
            LocalKafka(tmp_path / "kafka").start()
        assert broker.is_running()
    assert not broker.is_running()


@pytest.mark.kafka
def test_port_in_use_is_a_clear_error(tmp_path: Path, warm_libs: Path) -> None:
    """Asking for a port something else holds fails before the JVM starts."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LocalKafkaError, match=f"127.0.0.1:{port} is already in use"):
            LocalKafka(tmp_path / "kafka", port=port).start()


# -- CLI ---------------------------------------------------------------------------------------


@pytest.mark.kafka
def test_cli_detach_then_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], warm_libs: Path
) -> None:
    """`kafka start --detach` returns once ready and leaves the broker up; `kafka stop` ends it."""
    data = str(tmp_path / "kafka")
    args = parse("kafka", "start", "--detach", "--port", "0", "--data-dir", data)
    assert 0 == args.func(args)
    running = running_broker(data)
    assert running is not None
    try:
        # The last stdout line: unconfigured structlog may print to stdout as well.
        assert f"kafka ready at {running.bootstrap_servers}" == last_line(capsys)
        args = parse("kafka", "start", "--detach", "--port", "0", "--data-dir", data)
        assert 0 == args.func(args)
        already = f"(already running, pid {running.pid})"
        assert f"kafka ready at {running.bootstrap_servers} {already}" == last_line(capsys)
        args = parse("kafka", "stop", "--data-dir", data)
        assert 0 == args.func(args)
        stopped = f"kafka stopped (pid {running.pid}, {running.bootstrap_servers})"
        assert stopped == last_line(capsys)
        assert None is running_broker(data)
    finally:
        stop_broker(data)


@pytest.mark.kafka
def test_cli_foreground_stops_broker_on_sigterm(tmp_path: Path, warm_libs: Path) -> None:
    """In the foreground, SIGTERM stops the broker cleanly and the command exits 0."""
    data = tmp_path / "kafka"
    command = [sys.executable, "-m", "bridge.devtools.kafka.cli", "kafka", "start", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--data-dir", str(data)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        line = _read_line(proc, timeout=90)
        running = running_broker(data)
        assert running is not None
        assert f"kafka ready at {running.bootstrap_servers}\n" == line
        proc.send_signal(signal.SIGTERM)
        assert 0 == proc.wait(timeout=40)
        assert None is running_broker(data)
        with pytest.raises(ProcessLookupError):
            os.kill(running.pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_broker(data)
        assert proc.stdout is not None
        proc.stdout.close()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, waiting at most ``timeout`` and failing early if the process exits."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                return proc.stdout.readline()
            assert None is proc.poll(), "the CLI exited before the broker was ready"
    pytest.fail(f"no output within {timeout}s")
