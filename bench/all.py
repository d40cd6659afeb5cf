"""Every benchmark with ``--quick`` (``make bench``), then ONE summary table: each goal, the
measured value and the ratio or verdict, collected from each script's ``--json`` summary.

    python bench/all.py [--full] [--only ingress,relay,...] [--json FILE]

Each benchmark's own report goes to stdout as it finishes; the summary comes last, with ``uptime``
(the load average) before and after the whole run and each benchmark's own before → after.
Whatever rows a benchmark writes to its ``--json`` file are in the table, in its order. Exit code
1 when a benchmark failed to run or ran out of time (its row says so); a missed goal is a row,
not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from procs import log
from report import speed_probe, table, uptime

# Issue 10's rows in its order: ingress and relay efficiency, then the costs that stay flat.
BENCHES = (
    "ingress",
    "relay",
    "http_clients",
    "sync",
    "soak",
    "outbox_scale",
    "ingress_memory",
    "sync_scale",
)
HERE = Path(__file__).resolve().parent
TIMEOUT = {"quick": 900.0, "full": 3600.0}  # seconds per benchmark before it is stopped


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the benchmark's process group (it stops what it started), SIGKILL after 30 s."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
        if proc.returncode is not None:
            return


def run_one(name: str, folder: Path, quick: bool) -> list[list[str]]:
    """Run ``bench/NAME.py``; its summary rows, or one row saying it failed."""
    summary = folder / f"{name}.json"
    argv = [sys.executable, str(HERE / f"{name}.py"), "--json", str(summary)]
    argv += ["--quick"] if quick else []
    log(f"running {' '.join(argv[1:])}")
    started = time.monotonic()
    proc = subprocess.Popen(argv, start_new_session=True)  # its report and progress pass through
    timeout = TIMEOUT["quick" if quick else "full"]
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        code = None
    except BaseException:
        _stop_group(proc)
        raise
    took = f"{time.monotonic() - started:.0f} s"
    if code is None:
        return [[name, "-", f"stopped after {timeout:.0f} s (timeout)", "**FAILED**"]]
    if not summary.exists():
        return [[name, "-", f"did not run (exit {code}, {took})", "**FAILED**"]]
    doc = orjson.loads(summary.read_bytes())
    rows = [[r["row"], r["goal"], r["measured"], r["ratio"]] for r in doc["rows"]]
    note = f"load {doc.get('load_before', '?')} → {doc.get('load_after', '?')}, {took}"
    if code:
        note += f", exit {code}"
    return [*rows, [f"{name}: run", "-", note, "-"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="full runs instead of --quick")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    parser.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(BENCHES)):
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    before, probe_before = uptime(), speed_probe()
    started = time.monotonic()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-all-") as folder:
        for name in names:
            rows += run_one(name, Path(folder), quick=not args.full)
    after, probe_after = uptime(), speed_probe()
    mode = "full" if args.full else "--quick"
    minutes = (time.monotonic() - started) / 60
    out = ["", f"## Summary ({mode}: {', '.join(names)}; {minutes:.1f} min)", "",
           f"uptime before: {before}", f"uptime after:  {after}",
           f"CPU probe before: {probe_before}", f"CPU probe after:  {probe_after}", ""]  # fmt: skip
    out += table(["row", "goal", "measured", "ratio / verdict"], rows)
    sys.stdout.write("\n".join(out) + "\n")
    if args.json:
        keys = ("row", "goal", "measured", "ratio")
        doc = {"mode": mode, "uptime_before": before, "uptime_after": after,
               "probe_before": probe_before, "probe_after": probe_after,
               "rows": [dict(zip(keys, r, strict=True)) for r in rows]}  # fmt: skip
        Path(args.json).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return 1 if any(r[3] == "**FAILED**" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
