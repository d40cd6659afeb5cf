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
