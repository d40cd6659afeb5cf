"""300 slow 2 MiB uploads against a real `commerce-bridge ingress` process (loopback only): it
keeps answering a valid webhook within a second and its RSS stays under RSS_BOUND_MIB."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.config import parse_config
from bridge.devtools.sign import sign_request
from bridge.kafka.topics import ensure_topics
from bridge.serve import free_port
from tests.support import config_text, fixture_bytes

pytestmark = pytest.mark.kafka

UPLOADS = 300
DECLARED = 2 * 1024 * 1024  # each announces a full 2 MiB body (the limit) ...
CHUNK = 64 * 1024  # ... and trickles it, CHUNK every PAUSE seconds, never finishing
PAUSE = 0.25
RSS_BOUND_MIB = 250  # the pod's limit is 512 Mi; an idle ingress is ~80 MiB


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/PID/status")


@contextlib.asynccontextmanager
async def ingress_process(
    tmp_path: Path, bootstrap: str, prefix: str
) -> AsyncIterator[tuple[int, int, int]]:
    """A running ingress process: (pid, webhook port, ops port), ready (Kafka connected)."""
    path = tmp_path / "bridge.toml"
    path.write_text(config_text(prefix=prefix, bootstrap=bootstrap))
    await ensure_topics(parse_config(path.read_text(), {}).kafka)
    port, ops_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--log-level", "error", "ingress", "--config", str(path),
        "--host", "127.0.0.1", "--port", str(port), "--ops-port", str(ops_port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                assert proc.returncode is None, "ingress exited"
                assert time.monotonic() < deadline, "ingress never became ready"
                with contextlib.suppress(httpx.TransportError):
                    ready = await client.get(f"http://127.0.0.1:{ops_port}/readyz")
                    if ready.status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield proc.pid, port, ops_port
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class Progress:
    """Chunks the uploads have sent so far; wait until a number is reached."""

    def __init__(self) -> None:
        self.sent = 0
        self._changed = asyncio.Condition()

    async def add(self) -> None:
        async with self._changed:
            self.sent += 1
            self._changed.notify_all()

    async def reach(self, target: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.sent >= target)


async def slow_upload(
    port: int, started: asyncio.Event, stop: asyncio.Event, progress: Progress
) -> None:
    """Announce a signed-looking 2 MiB Cyberbiz body and trickle it until told to stop."""
    with contextlib.suppress(OSError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /webhooks/cb-taipei HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nX-Cyberbiz-Event: variants/update\r\n"
            f"X-Cyberbiz-Hmac-Sha256: {'ab' * 32}\r\nContent-Length: {DECLARED}\r\n\r\n"
        )
        writer.write(head.encode() + b'{"pad": "')
        started.set()
        try:
            sent = 0
            while not stop.is_set() and not reader.at_eof() and sent + CHUNK < DECLARED:
                sent += CHUNK
                writer.write(b"x" * CHUNK)
                await writer.drain()
                await progress.add()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PAUSE)
        finally:
            writer.close()


async def test_slow_uploads_leave_the_ingress_answering_and_bounded(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """With 300 trickling 2 MiB uploads in progress, a valid webhook gets 202 within a second,
    and the process's RSS stays under RSS_BOUND_MIB."""
    config = parse_config(config_text(prefix=topic_prefix, bootstrap=kafka_bootstrap), {})
    async with ingress_process(tmp_path, kafka_bootstrap, topic_prefix) as (pid, port, _ops):
        stop = asyncio.Event()
        events = [asyncio.Event() for _ in range(UPLOADS)]
        progress = Progress()
        uploads = [asyncio.create_task(slow_upload(port, e, stop, progress)) for e in events]
        try:
            async with asyncio.timeout(30):
                for event in events:
                    await event.wait()
            body = fixture_bytes("bentoweb/variant.json")
            suffix, headers = sign_request(config.shops["bento-bkk"], body, "variant.update", 0)
            peak = rss_mib(pid)
            async with httpx.AsyncClient(timeout=10) as client:
                for _round in range(3):  # while the uploads keep trickling
                    body = body.replace(b'"old_stock": ', b'"old_stock": 1')
                    started = time.monotonic()
                    response = await client.post(
                        f"http://127.0.0.1:{port}/webhooks/bento-bkk{suffix}",
                        content=body,
                        headers=headers,
                    )
                    elapsed = time.monotonic() - started
                    assert (202, True) == (response.status_code, elapsed < 1.0), elapsed
                    peak = max(peak, rss_mib(pid))
                    # every upload trickles ~3 more chunks (~0.6 s) before the next round
                    async with asyncio.timeout(30):
                        await progress.reach(progress.sent + 3 * UPLOADS)
                    peak = max(peak, rss_mib(pid))
        finally:
            stop.set()
            await asyncio.gather(*uploads)
        print(f"slow uploads: peak RSS {peak:.0f} MiB (bound {RSS_BOUND_MIB} MiB)")
        assert peak < RSS_BOUND_MIB
