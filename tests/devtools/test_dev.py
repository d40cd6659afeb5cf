"""`commerce-bridge dev --once`: the whole local system runs and one sale reaches every shop."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

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
