"""Load generators in Python (uvloop, HTTP/1.1 keep-alive): open loop at a fixed rate, latency
counted from the *intended* send time, and closed loop for machines without ``wrk``; their results.
"""

from __future__ import annotations

import asyncio
import collections
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (values in any order); ``nan`` when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered)) - 1
    return ordered[max(0, min(len(ordered) - 1, rank))]


@dataclass(slots=True)
class LoadResult:
    """One measured cell; latencies in milliseconds, CPU as % of one core per component."""

    completed: int
    seconds: float
    statuses: dict[int, int]
    errors: int  # connect/read/write errors and timeouts
    p50: float
    p99: float
    max: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return self.completed - self.ok

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def cpu_per_request(self, component: str = "server") -> float:
        """CPU microseconds per completed request spent by ``component``."""
        share = self.cpu.get(component)
        return share * 1e4 / self.rate if share is not None and self.rate else float("nan")

    @classmethod
    def of(
        cls, latencies: list[float], seconds: float, statuses: dict[int, int], errors: int
    ) -> LoadResult:
        latencies.sort()
        return cls(
            completed=sum(statuses.values()),
            seconds=seconds,
            statuses=statuses,
            errors=errors,
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            max=latencies[-1] if latencies else float("nan"),
        )


def merge(answers: Sequence[dict[str, Any]]) -> LoadResult:
    """One result from several workers' ``{latencies, statuses, errors, seconds}``."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    for answer in answers:
        latencies += answer["latencies"]
        statuses.update({int(k): v for k, v in answer["statuses"].items()})
    errors = sum(a["errors"] for a in answers)
    return LoadResult.of(latencies, max(a["seconds"] for a in answers), dict(statuses), errors)


CLIENT_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


_KEEP_ALIVE = 4.0  # seconds a connection may idle before it is dropped (uvicorn closes at 5)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> int:
        """Write ``request``, read the whole response, return its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
        if match and int(match[1]):
            await self.reader.readexactly(int(match[1]))
        self.used = time.monotonic()
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections, most recently used first; stale ones are closed, not reused."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[Connection] = []

    async def fill(self, count: int) -> None:
        self._idle += [await Connection.open(self.host, self.port) for _ in range(count)]

    async def send(self, request: bytes) -> int:
        conn = None
        while self._idle and conn is None:
            candidate = self._idle.pop()
            if time.monotonic() - candidate.used < _KEEP_ALIVE:
                conn = candidate
            else:
                candidate.close()
        conn = conn or await Connection.open(self.host, self.port)
        try:
            status = await conn.send(request)
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        return status

    def close(self) -> None:
        for conn in self._idle:
            conn.close()


async def paced(
    host: str, port: int, requests: Sequence[bytes], rate: float, timeout: float = 10.0
) -> LoadResult:
    """Open loop: request i is due at start + i/rate, whatever happened to the earlier ones."""
    # (uvloop's loop.time() has millisecond resolution: timings use perf_counter)
    pool = Pool(host, port)
    await pool.fill(16)
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0

    async def one(request: bytes, due: float) -> None:
        nonlocal errors
        try:
            async with asyncio.timeout(timeout):
                status = await pool.send(request)
        except CLIENT_ERRORS:
            errors += 1
            return
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] += 1

    start = time.perf_counter() + 0.05
    tasks = []
    for i, request in enumerate(requests):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    pool.close()
    return LoadResult.of(latencies, time.perf_counter() - start, dict(statuses), errors)


async def closed_loop(
    host: str, port: int, make: Callable[[int], bytes], concurrency: int, duration: float
) -> dict[str, Any]:
    """``concurrency`` connections, each sending its next request once the last one answered."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0
    numbers = iter(range(10**8))
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        pool = Pool(host, port)
        while time.perf_counter() < deadline:
            request = make(next(numbers))
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(10.0):
                    status = await pool.send(request)
            except CLIENT_ERRORS:
                errors += 1
                continue
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] += 1
        pool.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {
        "latencies": latencies,
        "statuses": dict(statuses),
        "errors": errors,
        "seconds": seconds,
    }
