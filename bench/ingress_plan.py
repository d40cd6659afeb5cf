"""What an ingress benchmark run measures (plan, targets, results) and its bridge configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loadgen import LoadResult
from procs import Child

from bridge.config import Config, parse_config

HOST = "127.0.0.1"


SHOP = "bento-bkk"


NAMES = {
    "bare": "bare Starlette (a)",
    "minimal": "minimal ingress (c)",
    "raw": "raw aiokafka (b)",
    "ingress": "ingress, all features, log info",
    "ingress-warning": "ingress, log warning",
}


TARGETS = ("bare", "minimal", "raw", "ingress", "ingress-warning")  # the order of each cell


@dataclass(frozen=True, slots=True)
class Plan:
    concurrency: list[int]
    duration: float
    rate: float
    paced_seconds: float
    warmup: float
    warning_level: bool  # also the ingress at log level warning (what logging costs)
    wrk_threads: int
    python_client: bool
    profile: bool
    profile_dir: Path | None = None  # where py-spy's raw output is kept (default: deleted)
    json: str | None = None  # --json FILE: the goal rows for bench/all.py


@dataclass(slots=True)
class Target:
    name: str
    port: int
    child: Child
    config: Path
    ready_port: int  # /readyz: the ingress serves it on its ops port
    seen_202: int = 0  # by the load generators, warm-up included
    abandoned: int = 0  # at most this many requests were in flight when wrk stopped


@dataclass(slots=True)
class Results:
    closed: dict[tuple[str, int], LoadResult] = field(default_factory=dict)
    paced: dict[str, tuple[LoadResult, str]] = field(default_factory=dict)  # result, ack p99
    checks: list[tuple[str, ...]] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    # target -> (the profiled cell, py-spy samples by area): the per-request CPU breakdown
    areas: dict[str, tuple[LoadResult, dict[str, int]]] = field(default_factory=dict)


def config_text(bootstrap: str, prefix: str, secret: str, pii_key: str) -> str:
    """Production defaults (linger, publish timeout, dedup, PII encryption); one BentoWeb shop."""
    return f"""\
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
partitions = 3

[privacy]
mode = "encrypt"
key = "{pii_key}"

[[shops]]
id = "{SHOP}"
platform = "bentoweb"
webhook_secrets = ["{secret}"]
"""


def load(path: Path | str) -> Config:
    return parse_config(Path(path).read_text(), {}, str(path))
