"""Report pieces shared by the benchmarks: the machine, the load average, markdown tables."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
import timeit
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"load average: {load_average()}"


def speed_probe() -> str:
    """A fixed CPU-bound job timed here and now, for comparing runs across days and machines:
    absolute rates (the relay's 2,000/s) move with the host; this says by how much. Parsing and
    re-encoding the benchmark's 5.7 KB BentoWeb order with orjson, best of 5 x 2,000."""
    from samples import ID_BASE, bento_order_template

    template = bento_order_template()
    body = template.body(ID_BASE, template.stamp(time.time()))

    def job() -> None:
        orjson.dumps(orjson.loads(body))

    best = min(timeit.repeat(job, number=2000, repeat=5)) / 2000
    return f"{best * 1e6:.1f} µs per parse + encode of the 5.7 KB order (best of 5 x 2,000)"


def machine_facts() -> Iterator[tuple[str, str]]:
    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), model)
    yield "CPUs (nproc)", f"{len(os.sched_getaffinity(0))} ({model})"
    yield "kernel", platform.release()
    yield "python", f"{platform.python_version()} ({platform.python_implementation()})"
    names = ("uvicorn", "uvloop", "httptools", "starlette", "aiokafka", "orjson")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (absent)")
    yield "packages", ", ".join(found)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the summary rows as JSON")


def write_summary(
    path: str | None, bench: str, rows: Sequence[dict[str, str]], **extra: Any
) -> None:
    """``{"bench", "rows": [{"row", "goal", "measured", "ratio"}], ...}`` for ``bench/all.py``."""
    if path:
        Path(path).write_bytes(orjson.dumps({"bench": bench, "rows": list(rows), **extra}))
