"""Real processes for the crash and fault suite: start, wait for a log event, kill -9, SIGTERM.

Every process is ``python -m bridge --log-format json …`` with its stderr in a file, so a
scenario can wait for an event without sleeping and the suite can scan every line a process ever
wrote (no secret, no PII).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

ALL_LOGS: list[Path] = []  # every process log of the session, for the secrets/PII scan


class Proc:
    """One ``commerce-bridge`` process whose stderr goes to ``log``."""

    def __init__(self, name: str, args: Sequence[str], folder: Path) -> None:
        self.name = name
        self.args = list(args)
        self.folder = folder
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / f"{name}.log"

    def start(self) -> Proc:
        self.runs += 1
        self.log = self.folder / f"{self.name}.{self.runs}.log"
        ALL_LOGS.append(self.log)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--log-format", "json", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def events(self) -> list[dict[str, object]]:
        """The JSON log lines written so far (non-JSON lines are skipped)."""
        found = []
        for line in self.log.read_bytes().splitlines():
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                found.append(doc)
        return found

    async def wait_for(self, event: str, timeout: float = 60.0, after: int = 0) -> None:
        """Until the process has logged ``event`` (more than ``after`` times)."""
        deadline = time.monotonic() + timeout
        while True:
            if sum(1 for e in self.events() if e.get("event") == event) > after:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {event!r}: {self.tail()}")
            await asyncio.sleep(0.05)

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e.get("event") == event)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"{self.name} did not stop on SIGTERM: {self.tail()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_bytes()[-chars:].decode("utf-8", "replace")
