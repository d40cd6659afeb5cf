"""Child processes of the benchmarks: workers that print ``READY``, wait for ``GO`` on stdin and
answer one JSON line (so several start measuring at once), servers in their own process group,
and HTTP probes of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from cpu import CpuMeter
from samples import REPO


def log(message: str) -> None:
    """Progress goes to stderr; stdout is the report."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


_GO = {"cpu": 0.0}


def ready_then_wait_for_go() -> None:
    """Worker side: set-up is done; start measuring when the parent says so."""
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    sys.stdin.readline()
    _GO["cpu"] = time.process_time()


def answer(data: dict[str, Any]) -> None:
    """Worker side: the result as one JSON line on stdout.

    Written with ``os.write`` until done: after a uvloop loop ran in the process, a large write
    to the stdout pipe can come back partial (65,536 bytes), and ``sys.stdout`` drops the rest.
    """
    sys.stdout.flush()
    data = {**data, "cpu_seconds": time.process_time() - _GO["cpu"]}  # since GO, all threads
    view = memoryview(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    while view:
        view = view[os.write(sys.stdout.fileno(), view) :]


def run_workers(
    argvs: Sequence[Sequence[str]], meter: CpuMeter
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Start workers, GO once all are READY; their answers and the CPU used meanwhile.

    ``client`` is the workers' own CPU since GO (the children's rusage would count their set-up).
    """
    procs = [
        subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    try:
        for proc in procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "READY":
                raise RuntimeError(f"worker {proc.args!r} failed to start")
        meter.start()
        started = time.monotonic()
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.write("GO\n")
                proc.stdin.flush()
        outputs = [proc.communicate(timeout=900)[0] for proc in procs]
        cpu = meter.stop()
        wall = time.monotonic() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed := [proc.args for proc in procs if proc.returncode]:
        raise RuntimeError(f"worker failed: {failed!r}")
    answers = [orjson.loads(out.strip().splitlines()[-1]) for out in outputs]
    cpu["client"] = 100 * sum(a.pop("cpu_seconds") for a in answers) / wall
    return answers, cpu


class Child:
    """A long-running child in its own process group; ``stop()`` signals the whole group."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, **kwargs: Any) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
                **kwargs,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 25.0) -> None:
        """SIGTERM (the process drains), SIGKILL after ``timeout``; idempotent."""
        if self.proc.poll() is not None:
            return
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the group this child leads (start_new_session)


def wait_http(url: str, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Until GET ``url`` answers 200 (``/readyz``: for the ingress, Kafka is connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{url}: the server exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://127.0.0.1
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http://127.0.0.1
        return str(response.read().decode())


def prometheus_samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample in Prometheus text format."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
            yield match[1], labels, float(match[3])
