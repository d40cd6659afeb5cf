"""CPU accounting of the benchmarks (per process, the machine, the load generator) and py-spy
profile summaries.
"""

from __future__ import annotations

import collections
import os
import re
import resource
import shutil
import sys
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process, all threads (Linux ``/proc``); None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> float:
    """CPU time all cores spent busy since boot (``/proc/stat``): this and every other process."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS


class CpuMeter:
    """CPU of named processes, plus reaped children as ``client``, between start() and stop().

    ``machine`` is what all cores did meanwhile, whoever ran: on a shared machine, what the
    measured processes do not account for is someone else's load.
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self._before: dict[str, float | None] = {}
        self._children = 0.0
        self._machine = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._children = _children_cpu()
        self._machine = machine_cpu_seconds()
        self._wall = time.monotonic()

    def stop(self, client: str = "client") -> dict[str, float]:
        """% of one core per process over the interval (``machine``: up to 100 x cores)."""
        wall = time.monotonic() - self._wall
        used = {client: 100 * (_children_cpu() - self._children) / wall}
        used["machine"] = 100 * (machine_cpu_seconds() - self._machine) / wall
        for name, pid in self.pids.items():
            before, after = self._before.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                used[name] = 100 * (after - before) / wall
        return used


def find_py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def profile_summary(raw: Path, rate: int, seconds: float, top: int = 12) -> list[str]:
    """Markdown lines from py-spy's ``--format raw`` (collapsed stacks): where the CPU goes."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[frame] += int(count)
    if not total:
        return ["(no samples)"]
    busy = total / (rate * seconds)
    out = [f"{total:,} samples at {rate}/s over {seconds:g} s: on CPU {busy:.0%} of the time.", ""]
    out += ["Inclusive, bridge code:", ""]
    ours = [(f, n) for f, n in inclusive.most_common() if "(bridge/" in f]
    out += [f"- {100 * n / total:4.1f}% `{f}`" for f, n in ours[: top * 2]]
    out += ["", "Self time (line level):", ""]
    out += [f"- {100 * n / total:4.1f}% `{f}`" for f, n in own.most_common(top)]
    return out


# Where a py-spy sample's CPU goes: the first area whose pattern matches a frame, walking from
# the leaf (the running line) towards the root; frames of the standard library's plumbing
# (asyncio, dataclasses, …) are passed over so that they count for their caller.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PII encryption", ("bridge/privacy.py", "cryptography/")),
    ("logging", ("structlog/", "bridge/log.py", "logging/")),
    ("metrics", ("prometheus_client/", "bridge/ingress/metrics.py")),
    ("dedup", ("bridge/ingress/dedup.py",)),
    ("verification", ("/webhooks.py", "bridge/ingress/hooks.py", "hmac.py", "/signing.py")),
    ("normalisation", ("bridge/platforms/", "bridge/events.py", "bridge/times.py", "_normalise (")),
    ("record building (value, headers)", ("bridge/kafka/cloudevents.py", "send (bridge/")),
    ("kafka produce (aiokafka)", ("aiokafka/", "bridge/kafka/", "kafka/")),
    ("HTTP (uvicorn, starlette, body)", (
        "uvicorn/", "starlette/", "h11/", "httptools/", "bridge/ingress/body.py",
    )),
    ("request handling (ingress app, baseline handler)", ("bridge/ingress/", "ingress_workers.py")),
)  # fmt: skip
OTHER_AREA = "event loop (I/O, callbacks), GC, other"
# Frames that run callbacks: below them a sample is the event loop's own (I/O, scheduling).
_LOOP = ("Runner.run (", "run_forever (", "_run_once (", "Handle._run (", "uvloop")
_PLUMBING = ("asyncio/", "selectors.py", "contextlib.py")  # count for their caller


def classify(frames: list[str]) -> str:
    """The area of one sample, ``frames`` root first (py-spy's order): the first frame from the
    leaf that matches an area, stopping at the event loop's callback dispatch."""
    for frame in reversed(frames):
        if any(p in frame for p in _LOOP):
            break
        if any(p in frame for p in _PLUMBING):
            continue
        for area, patterns in AREAS:
            if any(p in frame for p in patterns):
                return area
    return OTHER_AREA


def area_breakdown(raw: Path) -> dict[str, int]:
    """py-spy samples by area (:data:`AREAS`) from ``--format raw`` output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[classify(stack.split(";"))] += int(count)
    return dict(counts)
