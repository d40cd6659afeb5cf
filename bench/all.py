"""Every benchmark with ``--quick`` (``make bench``), then ONE summary table: each goal, the
measured value and the ratio or verdict, collected from each script's ``--json`` summary.

    python bench/all.py [--full] [--only ingress,relay,sync,soak]

Each benchmark's own report goes to stdout as it finishes; the summary comes last. Exit code 1
when a benchmark failed to run (its row says so); a missed goal is a row, not a failure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from procs import log
from report import table, uptime

BENCHES = ("ingress", "relay", "sync", "soak")
HERE = Path(__file__).resolve().parent


def run_one(name: str, folder: Path, quick: bool) -> list[list[str]]:
    """Run ``bench/NAME.py``; its summary rows, or one row saying it failed."""
    summary = folder / f"{name}.json"
    argv = [sys.executable, str(HERE / f"{name}.py"), "--json", str(summary)]
    argv += ["--quick"] if quick else []
    log(f"running {' '.join(argv[1:])}")
    started = time.monotonic()
    done = subprocess.run(argv, check=False)  # its report and progress pass through
    took = f"{time.monotonic() - started:.0f} s"
    if not summary.exists():
        return [[name, "-", f"did not run (exit {done.returncode}, {took})", "**FAILED**"]]
    doc = orjson.loads(summary.read_bytes())
    rows = [[r["row"], r["goal"], r["measured"], r["ratio"]] for r in doc["rows"]]
    note = f"load {doc.get('load_before', '?')} → {doc.get('load_after', '?')}, {took}"
    if done.returncode:
        note += f", exit {done.returncode}"
    return [*rows, [f"{name}: run", "-", note, "-"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full runs instead of --quick")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(BENCHES)):
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    before = uptime()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-all-") as folder:
        for name in names:
            rows += run_one(name, Path(folder), quick=not args.full)
    after = uptime()
    mode = "full" if args.full else "--quick"
    out = ["", f"## Summary ({mode}: {', '.join(names)})", "", f"uptime before: {before}",
           f"uptime after:  {after}", ""]  # fmt: skip
    out += table(["row", "goal", "measured", "ratio / verdict"], rows)
    sys.stdout.write("\n".join(out) + "\n")
    return 1 if any(r[3] == "**FAILED**" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
