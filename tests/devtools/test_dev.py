"""`commerce-bridge dev --once`: the whole local system runs and one sale reaches every shop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.kafka

AT_SHOPS = re.compile(r"^tee-black-m: pool (\d+); at the shops: (.+)$", re.MULTILINE)


async def test_dev_once_spreads_one_sale_to_every_shop(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The recount starts every shop at 40; a sale of 2 at cb-tainan leaves the pool and every
    member's level at the simulator at 38; the run ends by itself with exit code 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "dev", "--dir", str(tmp_path / "dev"),
        "--port", "0", "--simulator-port", "0", "--once",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 55)
    text = out.decode()
    assert 0 == proc.returncode, text + err.decode()[-3000:]
    assert re.search(r"sale of 2 at cb-tainan → every shop at 38 in \d+\.\d\d s", text), text
    found = AT_SHOPS.search(text)
    assert found is not None, text
    levels = dict(part.rsplit("=", 1) for part in found.group(2).split(" · "))
    expected = {"cb-taipei 5001": "38", "cb-tainan 6001": "38", "bento-bkk 753758": "38"}
    assert ("38", expected) == (found.group(1), levels)


async def test_dev_no_traffic_spreads_your_own_sale_and_stops_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With --no-traffic, the sale the header tells you to make reaches every shop and is shown;
    SIGTERM then stops everything with exit code 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "dev", "--dir", str(tmp_path / "dev"),
        "--port", "0", "--simulator-port", "0", "--no-traffic",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        curl = await asyncio.wait_for(_line(proc.stdout, "curl -X POST "), 40)
        url = re.search(r"(http://127\.0\.0\.1:\d+/_sim/sale)", curl)
        assert url is not None, curl
        body = {"shop": "cb-taipei", "variant": "5001", "quantity": 2}
        async with httpx.AsyncClient() as http:
            assert 200 == (await http.post(url.group(1), json=body)).status_code
        seen = await asyncio.wait_for(_line(proc.stdout, "every shop at"), 20)
        assert "tee-black-m: sale of 2 at cb-taipei, not by the demo" in seen
        assert "→ every shop at 38 in " in seen
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert 0 == proc.returncode, err.decode()[-3000:]


async def _line(stream: asyncio.StreamReader, wanted: str) -> str:
    """The first line of ``stream`` containing ``wanted``."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"output ended before a line with {wanted!r}")
        if wanted in line:
            return line
