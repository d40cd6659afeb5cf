"""``commerce-bridge consume NAME``: built from the app registry; SIGTERM under load loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from bridge.cli import build_parser, main
from bridge.kafka.topics import Topics
from bridge.outbox.store import open_store
from bridge.serve import free_port
from consumers import registry
from consumers.runtime import Runtime, RuntimeOptions
from tests.consumers.support import Stream, committed, consumer_config, until
from tests.support import config_text


def test_consume_help_lists_every_registered_app(capsys: pytest.CaptureFixture[str]) -> None:
    """`consume --help` names each app of the registry with its one-line summary."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["consume", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert 0 == exited.value.code
    specs = registry.specs()
    assert ["commands", "inventory-sync"] == [spec.name for spec in specs]
    for spec in specs:
        assert f"{spec.name} {spec.summary}" in out


def test_each_registered_app_is_named_as_registered() -> None:
    """A registered factory builds an app whose name is the one `consume NAME` takes."""
    assert [spec.name for spec in registry.specs()] == [
        spec.create().name for spec in registry.specs()
    ]
    assert "commands" == registry.get("commands").name


def test_poison_after_below_one_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--poison-after 0` is refused with exit code 2 and the flag named."""
    path = tmp_path / "bridge.toml"
    path.write_text(config_text())
    assert 2 == main(["consume", "commands", "--config", str(path), "--poison-after", "0"])
    assert "--poison-after: must be at least 1" in capsys.readouterr().err


async def outbox_keys(dsn: str) -> set[str]:
    store = await open_store(dsn)
    try:
        return {row.idempotency_key for row in await store.list_rows(limit=1_000_000)}
    finally:
        await store.close()


def logged(path: Path, needle: bytes) -> bool:
    return needle in path.read_bytes()


async def wait_for_log(path: Path, needle: bytes, timeout: float = 60) -> None:
    async def seen() -> bool:
        return logged(path, needle)

    await until(seen, timeout)


@pytest.mark.kafka
async def test_sigterm_under_load_loses_no_command(
    kafka_topics: Topics, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """`consume commands` fed a steady stream gets SIGTERM: it exits 0, every record below its
    committed offsets is in the outbox, and the next run takes the rest — sent = in the outbox."""
    config = consumer_config(kafka_topics.prefix, kafka_bootstrap, tmp_path)
    path = tmp_path / "bridge.toml"
    extra = f'\n[outbox]\ndsn = "{config.outbox.dsn}"\n'
    path.write_text(config_text(prefix=kafka_topics.prefix, bootstrap=kafka_bootstrap, extra=extra))
    log_path = tmp_path / "consumer.log"
    port = free_port()
    group = "bridge-commands"
    stream = Stream(kafka_bootstrap, kafka_topics.commands)
    await stream.producer.start()
    feeding = asyncio.create_task(stream.run())
    try:
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", "--log-format", "json", "consume", "commands",
                "--config", str(path), "--metrics-port", str(port),
                "--metrics-host", "127.0.0.1",
                stdout=log_file, stderr=log_file, cwd=tmp_path,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            try:
                await wait_for_log(log_path, b"consumer_started")

                async def busy() -> bool:
                    return len(await outbox_keys(config.outbox.dsn)) >= 300

                await until(busy, 60)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    ready = (await client.get("/readyz")).json()
                    metrics = (await client.get("/metrics")).text
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), 40)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert 0 == code, log_path.read_bytes()[-2000:]
        assert {"ready": True, "checks": {"app": "commands", "group": group}} == ready
        labels = f'group="{group}",topic="{kafka_topics.commands}"'
        assert f"bridge_consumer_records_total{{{labels}}}" in metrics
        assert f'bridge_consumer_lag{{group="{group}",partition="' in metrics
        assert logged(log_path, b"consumer_stopped")
        offsets = await committed(kafka_bootstrap, group, kafka_topics.commands)
        in_outbox = await outbox_keys(config.outbox.dsn)
        below = {key for (p, o), key in stream.placed.items() if o < offsets.get(p, 0)}
        assert set() == below - in_outbox  # committed ⇒ in the outbox
        assert len(below) >= 300
    finally:
        stream.stop.set()
        await feeding
        await stream.producer.stop()

    sent = set(stream.placed.values())
    total = len(stream.placed)
    runtime = Runtime(registry.get("commands").create(), config, options=RuntimeOptions())
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))

    async def drained() -> bool:
        done = await committed(kafka_bootstrap, group, kafka_topics.commands)
        return total == sum(done.values())

    try:
        await until(drained, 60)
    finally:
        stop.set()
        await task
    assert (len(sent), sent) == (total, await outbox_keys(config.outbox.dsn))
