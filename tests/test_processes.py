"""Every long-running process stops on SIGTERM: drains, commits, exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from bridge.serve import free_port
from tests.support import config_text

pytestmark = pytest.mark.kafka


async def start(args: list[str], tmp_path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--log-format", "json", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def wait_for_line(
    proc: asyncio.subprocess.Process, needle: bytes, timeout: float = 60
) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen: list[bytes] = []
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(proc.stderr.readline(), deadline - time.monotonic())
        seen.append(line)
        if needle in line:
            return
        if not line:
            break
    raise AssertionError(f"{needle!r} never logged; stderr: {b''.join(seen)[-2000:]!r}")


async def terminate(proc: asyncio.subprocess.Process) -> tuple[int, bytes]:
    proc.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode is not None
    return proc.returncode, err


def write_config(tmp_path: Path, bootstrap: str, prefix: str) -> Path:
    path = tmp_path / "bridge.toml"
    extra = f'\n[outbox]\ndsn = "sqlite:///{tmp_path / "outbox.db"}"\n'
    path.write_text(config_text(prefix=prefix, bootstrap=bootstrap, extra=extra))
    return path


async def test_ingress_exits_0_on_sigterm(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """`commerce-bridge ingress` serves, then on SIGTERM stops and exits 0 after flushing the producer."""
    config = write_config(tmp_path, kafka_bootstrap, topic_prefix)
    port, ops_port = free_port(), free_port()
    argv = ["ingress", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = await start([*argv, "--ops-port", str(ops_port)], tmp_path)
    await wait_for_line(proc, b"kafka_producer_ready")
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"http://127.0.0.1:{ops_port}/readyz")
    assert (200, {"ready": True, "checks": {"kafka": True}}) == (ready.status_code, ready.json())
    code, err = await terminate(proc)
    assert 0 == code, err[-2000:]
    assert b"ingress_stopped" in err


async def test_commands_consumer_exits_0_on_sigterm(
    kafka_bootstrap: str, kafka_topics: object, topic_prefix: str, tmp_path: Path
) -> None:
    """`commerce-bridge consume commands` joins its group and says so on /readyz; on SIGTERM it leaves the
    group and exits 0."""
    config = write_config(tmp_path, kafka_bootstrap, topic_prefix)
    port = free_port()
    args = ["consume", "commands", "--config", str(config), "--metrics-port", str(port)]
    proc = await start([*args, "--metrics-host", "127.0.0.1"], tmp_path)
    await wait_for_line(proc, b"consumer_started")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    body = ready.json()
    assert (200, {"ready", "checks"}, True) == (ready.status_code, set(body), body["ready"])
    assert "bridge_consumer_records_total" in metrics.text
    code, err = await terminate(proc)
    assert 0 == code, err[-2000:]
    assert b"consumer_stopped" in err


async def test_bad_config_names_the_key_and_exits_2(tmp_path: Path) -> None:
    """A broken config is refused at start-up with the key named, no traceback."""
    path = tmp_path / "bridge.toml"
    path.write_text(config_text().replace('platform = "bentoweb"', 'platform = "bentoveb"'))
    proc = await start(["ingress", "--config", str(path)], tmp_path)
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert 2 == proc.returncode
    assert b"shops[1].platform" in err
    assert b"Traceback" not in err


@pytest.mark.parametrize("command", ["ingress", "relay"])
async def test_a_taken_port_is_one_error_line_and_exit_1(
    command: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A port held by another process: one line naming host:port and the reason, exit 1, no
    traceback (the e2e stack once met a relay dying on its metrics port with a traceback)."""
    config = write_config(tmp_path, kafka_bootstrap, topic_prefix)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = {
            "ingress": ["ingress", "--host", "127.0.0.1", "--port", str(free_port()),
                        "--ops-port", str(port)],
            "relay": ["relay", "--metrics-host", "127.0.0.1", "--metrics-port", str(port)],
        }[command]  # fmt: skip
        proc = await start([*args, "--config", str(config)], tmp_path)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert 1 == proc.returncode
    assert b"Traceback" not in err
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith(f"commerce-bridge: cannot listen on 127.0.0.1:{port}: "), last
    assert "in use" in last
