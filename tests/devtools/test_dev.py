"""`commerce-bridge dev --once`: the whole local system runs, samples land, commands are delivered."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka


async def test_dev_once_lands_every_sample_and_delivers_commands(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Every sample webhook is answered 202 and shows on Kafka; both sample commands reach the
    simulator through the outbox and the relay; the run ends by itself with exit code 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "dev", "--dir", str(tmp_path / "dev"),
        "--port", "0", "--simulator-port", "0", "--once", "--timeout", "90",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert 0 == proc.returncode, text + err.decode()[-3000:]
    webhooks = [line for line in text.splitlines() if line.startswith("→ webhook")]
    assert 6 == len(webhooks)
    assert all(" 202 " in line for line in webhooks), webhooks
    for ce_type in ("commerce.order.created", "commerce.order.paid", "commerce.variant.updated",
                    "commerce.product.updated"):  # fmt: skip
        assert ce_type in text
    assert 2 == text.count("delivery done")
    assert "simulator stock: bento-bkk 753758=42 · cb-taipei 5001=42" in text
    assert "all samples landed and delivered" in text
