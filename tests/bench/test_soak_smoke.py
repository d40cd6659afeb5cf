"""Smoke run of ``bench/soak.py``: the whole pipeline for a few seconds as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.kafka
def test_soak_smoke_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A 10 s soak at 20/s exits 0 and its table says every accepted webhook is on Kafka."""
    summary = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--seconds", "10", "--rate", "20",
         "--json", str(summary)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    lost_row = next(line for line in done.stdout.splitlines() if line.startswith("| lost"))
    assert ["0"] == re.findall(r"lost = (\d+)", lost_row)
    sent = next(line for line in done.stdout.splitlines() if line.startswith("| webhooks sent"))
    assert ["200"] == re.findall(r"202: ([\d,]+)", sent)
    rows = orjson.loads(summary.read_bytes())["rows"]
    assert "0" == rows[0]["measured"]
