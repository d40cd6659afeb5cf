"""What glibc's malloc thresholds cost aiokafka: encoding one produce request, per setting.

    .venv/bin/python bench/malloc_thresholds.py [--sizes 20000,40000,80000,300000]

aiokafka builds a produce request by joining bytes several times over (record batch, partition
array, topic array, request, size prefix). Each setting runs in a fresh process: glibc's own
dynamic thresholds; the mmap threshold fixed at its 128 KiB start value (what
``bridge/memory.py`` did first, for flat RSS); and what it does now, 4 MiB mmap and 8 MiB trim
thresholds. A block over the mmap threshold is mapped, page-faulted in and unmapped on every
copy; a trim threshold below the request hands the heap top back after each one. Prints a
markdown table: µs per ``ProduceRequest_v7.encode`` of three partitions of SIZE bytes each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

SETTINGS = {
    "glibc dynamic": "",
    "mmap fixed at 128 KiB (before)": "memory.fix_mmap_threshold(128 * 1024)",
    "mmap 4 MiB, trim 8 MiB (bridge/memory.py)": "memory.fix_mmap_threshold()",
}

PROBE = """
import os, sys, timeit
from bridge import memory
{setting}
from aiokafka.protocol.produce import ProduceRequest_v7
data = os.urandom(8) * ({size} // 8)
request = ProduceRequest_v7(None, -1, 30000, [("t", [(0, data), (1, data), (2, data)])])
best = min(timeit.repeat(request.encode, number=1000, repeat=3)) / 1000
print(best * 1e6)
"""


def measure(setting: str, size: int) -> float:
    code = PROBE.format(setting=setting, size=size)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/malloc_thresholds.py")
    parser.add_argument("--sizes", default="20000,40000,80000,300000", help="bytes per partition")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| setting | " + " | ".join(f"3 x {s:,} B" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, setting in SETTINGS.items():
        cells = [f"{measure(setting, size):,.1f} µs" for size in sizes]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
